"""JAX's persistent compilation cache, switched on by the entry points (`fit`, the CLI).

A second identical run in a new process then loads its compiled programs from disk
instead of compiling them again. Only the tracing and lowering of `train` remain.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import jax

ENV_DIR = "PUREJAXPPO_COMPILE_CACHE"  # a directory, or 0/off/false to switch the cache off
_OFF = {"0", "off", "false", "no", ""}


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/purejaxppo/jax`, or `~/.cache/purejaxppo/jax`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "purejaxppo" / "jax"


def enable_compile_cache(directory: str | os.PathLike | bool | None = True) -> Path | None:
    """Switch on JAX's persistent compilation cache; returns the directory in use.

    Precedence: an explicitly set `JAX_COMPILATION_CACHE_DIR` (or a cache directory
    already set with `jax.config.update`) wins and is left alone; then `directory`
    when it is a path; then `$PUREJAXPPO_COMPILE_CACHE` (a path, or 0/off to switch
    it off); then `default_cache_dir()`. `directory=False` (or None) leaves the
    cache as it is and returns the directory JAX already uses, if any.

    Every program is cached, however short its compile (the small ones add up to
    seconds on a CPU).
    """
    current = jax.config.jax_compilation_cache_dir
    if directory is False or directory is None:
        return Path(current) if current else None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or current:
        chosen = Path(current or os.environ["JAX_COMPILATION_CACHE_DIR"])
    elif directory is not True:
        chosen = Path(directory)
    else:
        env = os.environ.get(ENV_DIR)
        if env is not None and env.strip().lower() in _OFF:
            return None
        chosen = Path(env) if env else default_cache_dir()
    chosen = chosen.expanduser()
    chosen.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(chosen))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return chosen


# XLA:CPU logs a false "Target machine feature +prefer-no-gather is not supported"
# error for every program it loads from the persistent cache: the check mistakes
# LLVM tuning preferences for CPU features (openxla/xla#44565, jax-ml/jax#38445). The
# load itself succeeds; only these lines are dropped, everything else is re-emitted.
_FALSE_ALARM = b"cpu_aot_loader.cc"


_REDIRECT = threading.Lock()


@contextlib.contextmanager
def quiet_cache_loads() -> Iterator[None]:
    """Drop XLA:CPU's false machine-feature errors printed while compiling (loading
    from the cache) inside this block; other stderr output is passed through after.

    Only on the CPU with a cache directory set, and only in one thread at a time (a
    second thread's block, or a nested one, passes everything through)."""
    if (
        jax.default_backend() != "cpu"
        or not jax.config.jax_compilation_cache_dir
        or not _REDIRECT.acquire(blocking=False)
    ):
        yield
        return
    try:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)  # restore first, whatever happens next
                os.close(saved)
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                captured.seek(0)
                for line in captured:
                    if _FALSE_ALARM not in line:
                        os.write(2, line)
    finally:
        _REDIRECT.release()
