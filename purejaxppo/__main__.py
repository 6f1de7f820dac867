"""`python -m purejaxppo ...`: the same command line as `purejaxppo ...`."""

import sys

from purejaxppo.cli import main

if __name__ == "__main__":
    sys.exit(main())
