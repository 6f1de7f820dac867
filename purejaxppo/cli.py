"""Command line: `purejaxppo train --env CartPole-v1 [--num-seeds K] ...`.

The flags of `train` are built from the fields of `Config` (with their docstrings as
help), so the CLI never drifts from the library. Errors in the arguments print one
`error: ...` line to stderr and exit with status 2.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import os
import re
import sys
import textwrap
import time
import typing
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import tyro

from purejaxppo.config import OPTIONAL_TRACED, TRACED_FIELDS, Config
from purejaxppo.runner import nanmean, train_chunked

# Config fields the command line cannot express (a Python object, not a flag).
_NOT_ON_CLI = ("env_params",)
# Help text where the command line differs from the Python API.
_CLI_DOCS = {"env": "Registered gymnax environment id, e.g. CartPole-v1 or Pendulum-v1."}
# Final return: nanmean of episode_return over this many last updates.
FINAL_UPDATES = 10


def config_field_docs() -> dict[str, str]:
    """{field name: attribute docstring} for every `Config` field, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(Config)))
    body = tree.body[0].body
    docs = {}
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def _int_from_str(args: list[str]) -> int:
    """Accept 500000, 500_000 and 5e5 (a whole number) for integer flags."""
    text = args[0]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


# Integer flags also accept scientific notation (`--total-timesteps 1e6`).
_Int = Annotated[
    int,
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="INT",
        instance_from_str=_int_from_str,
        is_instance=lambda x: isinstance(x, int) and not isinstance(x, bool),
        str_from_instance=lambda x: [str(x)],
    ),
]


def _cli_type(name: str, hint: Any) -> Any:
    if name == "env":
        return str  # on the command line the env is a registered gymnax id
    if name in OPTIONAL_TRACED:
        return float | None
    if name in TRACED_FIELDS:
        return float
    if hint is int:
        return _Int
    return hint


def _make_train_args() -> type:
    """A dataclass with the runner options and one flag per expressible Config field."""
    hints = typing.get_type_hints(Config)
    docs = config_field_docs()
    fields: list[tuple[str, Any, Any]] = [
        (
            "num_seeds",
            Annotated[_Int, tyro.conf.arg(help="Seeds trained side by side (vmapped).")],
            1,
        ),
        (
            "seed",
            Annotated[
                _Int,
                tyro.conf.arg(
                    help="Random seed in [0, 2**32); K seeds split jax.random.key(seed)."
                ),
            ],
            0,
        ),
        (
            "num_chunks",
            Annotated[
                _Int,
                tyro.conf.arg(help="About this many compiled chunks (one progress line each)."),
            ],
            10,
        ),
    ]
    for f in dataclasses.fields(Config):
        if f.name in _NOT_ON_CLI:
            continue
        kind = "traced" if f.name in TRACED_FIELDS else "static"
        doc = _CLI_DOCS.get(f.name, docs.get(f.name, ""))
        help_text = f"{doc} [{kind}]".strip()
        typ = Annotated[_cli_type(f.name, hints[f.name]), tyro.conf.arg(help=help_text)]
        fields.append((f.name, typ, f.default))
    return dataclasses.make_dataclass(
        "train",
        [(n, t, dataclasses.field(default=d)) for n, t, d in fields],
        frozen=True,
        namespace={"__doc__": "Train PPO on a gymnax environment, printing progress per chunk."},
    )


TrainArgs = _make_train_args()


def _cli_error(message: str) -> str:
    """Config's messages name `Config.field=value`; on the CLI say `--field=value`."""
    message = message.replace(" (or pass a gymnax Environment instance)", "")
    return re.sub(r"Config\.(\w+)=", lambda m: f"--{m.group(1).replace('_', '-')}=", message)


def _fmt(x: float) -> str:
    return "n/a (no episode ended)" if math.isnan(x) else f"{x:.1f}"


def run_train(args: Any) -> int:
    """Build the Config from parsed flags, train, print progress and a summary."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)
    }
    try:
        config = Config(**values)
        for name in ("num_seeds", "num_chunks"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)}: must be >= 1")
        if not 0 <= args.seed < 2**32:
            raise ValueError(f"--seed={args.seed}: must be in [0, 2**32)")
    except (ValueError, TypeError, ImportError) as e:
        print(f"error: {_cli_error(str(e))}", file=sys.stderr)
        return 2

    seeds = f"{args.num_seeds} seeds" if args.num_seeds > 1 else "1 seed"
    print(
        f"training {config.env} for {config.num_updates} updates x {config.batch_size} "
        f"steps = {config.num_updates * config.batch_size:,} env steps, {seeds} "
        f"(compiling first)",
        flush=True,
    )
    start = time.perf_counter()
    reports = []

    def progress(report):
        reports.append(report)
        print(report, flush=True)

    out = train_chunked(
        config, args.seed, num_seeds=args.num_seeds, num_chunks=args.num_chunks, callback=progress
    )
    total = time.perf_counter() - start

    # [num_seeds, num_updates] -> one final return per seed
    returns = np.reshape(out.metrics["episode_return"], (args.num_seeds, config.num_updates))
    per_seed = np.array([nanmean(r[-FINAL_UPDATES:]) for r in returns])
    if args.num_seeds == 1:
        print(f"final return (mean of last {FINAL_UPDATES} updates): {_fmt(per_seed[0])}")
    else:
        finite = per_seed[~np.isnan(per_seed)]
        worst = float(finite.min()) if finite.size else math.nan
        print(
            f"final return (mean of last {FINAL_UPDATES} updates) over {args.num_seeds} seeds: "
            f"mean {_fmt(nanmean(per_seed))}, min {_fmt(worst)}"
        )
    last = reports[-1]
    print(
        f"total time {total:.1f} s (compile {last.compile_seconds:.1f} s, "
        f"{last.steps_per_second:,.0f} env steps/s after compiling)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `purejaxppo` command and of `python -m purejaxppo`."""
    try:
        args = tyro.extras.subcommand_cli_from_dict(
            {"train": TrainArgs},
            prog="purejaxppo",
            description="purejaxppo: end-to-end compiled PPO in JAX.",
            args=argv,
        )
        return run_train(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a reader that stopped early (`purejaxppo train --help | head`).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
