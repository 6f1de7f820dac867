"""Command line: `purejaxppo train | eval | render | export | bench | presets`.

The Config flags of `train` and `bench` are built from the fields of `Config` (with
their docstrings as help), so the CLI never drifts from the library; their defaults
come from `--preset`, `--config FILE.yaml` or the `--resume`d run when given.
Errors in the arguments print one `error: ...` line to stderr and exit with status 2;
a run that fails (NaN, damaged checkpoint) exits with status 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import jax
import numpy as np
import tyro

from purejaxppo.config import OPTIONAL_TRACED, TRACED_FIELDS, Config, attribute_docs
from purejaxppo.io.cache import enable_compile_cache, quiet_cache_loads
from purejaxppo.runner.options import FitOptions, resume_defaults

# Config fields the command line cannot express (a Python object, not a flag).
_NOT_ON_CLI = ("env_params",)
# Help text where the command line differs from the Python API.
_CLI_DOCS = {"env": "Registered environment id, e.g. CartPole-v1, Breakout-MinAtar or brax/hopper."}
# Final return: nanmean of episode_return over this many last updates.
FINAL_UPDATES = 10


def config_field_docs() -> dict[str, str]:
    """{field name: attribute docstring} for every `Config` field, read from its source."""
    return attribute_docs(Config)


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
        return str  # on the command line the env is a registered id
    if name in OPTIONAL_TRACED:
        return float | None
    if name in TRACED_FIELDS:
        return float
    if hint is int:
        return _Int
    if hint == int | None:
        return _Int | None
    return hint


# A flag without a --no- twin (--no-compile-cache).
_Switch = Annotated[bool, tyro.conf.FlagCreatePairsOff]


def _arg(help_text: str, typ: Any, **kwargs) -> Any:
    return Annotated[typ, tyro.conf.arg(help=help_text, **kwargs)]


# Flags of `train` that are no runner option: where the config starts, the seed, and
# the multi-host set-up. (name, type, default, help)
_TRAIN_ONLY: list[tuple[str, Any, Any, str]] = [
    (
        "preset",
        str | None,
        None,
        "Start from a tuned preset (e.g. Breakout-MinAtar, brax/ant); "
        "flags override it. See `purejaxppo.presets.PRESETS`.",
    ),
    (
        "config",
        Path | None,
        None,
        "Start from a YAML file of Config fields (e.g. a run's config.yaml); flags override it.",
    ),
    (
        "sweep",
        tuple[str, ...],
        (),
        "Grid over traced hyperparameters, one compile for all "
        "points: --sweep lr=1e-3,3e-4 ent-coef=0,0.01.",
    ),
    ("seed", _Int, 0, "Random seed in [0, 2**32); K seeds split jax.random.key(seed)."),
    (
        "data_parallel",
        bool,
        False,
        "One run whose envs span every device of every process (a mesh axis named "
        "--data-axis); num_envs must divide evenly.",
    ),
    (
        "coordinator",
        str | None,
        None,
        "Multi-host: HOST:PORT of process 0; start the same command in every process "
        "(see the README's multi-host section).",
    ),
    ("num_processes", _Int | None, None, "Multi-host: the number of processes."),
    ("process_id", _Int | None, None, "Multi-host: this process's index in [0, N)."),
]

# FitOptions fields that are Python objects, not flags (--data-parallel builds the mesh).
NOT_FLAGS = ("callbacks", "mesh")
# Runner options whose command-line default differs from FitOptions'.
_CLI_DEFAULTS = {"verbose": True}


@dataclasses.dataclass(frozen=True)
class FlagForm:
    """A FitOptions field whose flags differ from the field: `flags(default, doc)`
    gives the flag specs, `value(args)` the field's value from the parsed flags."""

    flags: Callable[[Any, str], list[tuple[str, Any, Any]]]
    value: Callable[[Any], Any]


def _wandb_flags(default: Any, doc: str) -> list[tuple[str, Any, Any]]:
    settings = default if isinstance(default, dict) else {}
    return [
        ("wandb", _arg("Also log to Weights & Biases (pip install wandb).", bool), bool(default)),
        ("wandb_project", _arg("W&B project.", str), settings.get("project", "purejaxppo")),
        (
            "wandb_mode",
            _arg("W&B mode: online, offline (no network) or disabled.", str),
            settings.get("mode", "online"),
        ),
    ]


def _cache_flags(default: Any, doc: str) -> list[tuple[str, Any, Any]]:
    path = None if isinstance(default, bool) else Path(default)
    return [
        ("compile_cache", _arg(doc, Path | None), path),
        (
            "no_compile_cache",
            _arg("Do not use the persistent compilation cache.", _Switch),
            False,
        ),
    ]


def _stochastic_flag(default: Any, doc: str) -> list[tuple[str, Any, Any]]:
    help_text = "Evaluate by sampling actions instead of the mode."
    return [("eval_stochastic", _arg(help_text, bool), not default)]


def _progress_flag(default: Any, doc: str) -> list[tuple[str, Any, Any]]:
    help_text = "Show a progress bar on stderr when it is a terminal."
    return [("progress", _arg(help_text, bool), default is not False)]


def _pbt_flags(default: Any, doc: str) -> list[tuple[str, Any, Any]]:
    from purejaxppo.core.population import PBT, explore_text

    pbt = PBT.from_dict(default) if isinstance(default, dict) else default
    shown = pbt or PBT()
    explore = tuple(f"{name}={explore_text(how)}" for name, how in shown.explore)
    return [
        (
            "pbt_every",
            _arg(
                "Population-based training: every N updates the worst runs copy the best "
                "and explore (the runs of --sweep, or --num-seeds seeds); unset: off.",
                _Int | None,
            ),
            None if pbt is None else pbt.every,
        ),
        (
            "pbt_explore",
            _arg(
                "PBT: FIELD=perturb[:LOW:HIGH[:F1,F2,...]], FIELD=resample:LOW:HIGH or "
                "FIELD=logresample:LOW:HIGH, e.g. lr=perturb:1e-5:1e-2 ent-coef=resample:0:0.05.",
                tuple[str, ...],
            ),
            explore,
        ),
        (
            "pbt_fraction",
            _arg("PBT: the worst fraction copies the best fraction.", float),
            shown.fraction,
        ),
        (
            "pbt_fitness",
            _arg("PBT: the per-update metric ranked (higher wins).", str),
            shown.fitness,
        ),
        (
            "pbt_window",
            _arg("PBT: updates the fitness is averaged over (unset: --pbt-every).", _Int | None),
            shown.window,
        ),
    ]


def _pbt_value(args: Any) -> Any:
    from purejaxppo.core.population import PBT

    if args.pbt_every is None:
        if args.pbt_explore:
            raise ValueError("--pbt-explore: population-based training needs --pbt-every N")
        return None
    return PBT(
        every=args.pbt_every,
        explore=args.pbt_explore,
        fraction=args.pbt_fraction,
        fitness=args.pbt_fitness,
        window=args.pbt_window,
    )


def _wandb_value(args: Any) -> Any:
    return {"project": args.wandb_project, "mode": args.wandb_mode} if args.wandb else False


_FORMS = {
    "eval_deterministic": FlagForm(_stochastic_flag, lambda args: not args.eval_stochastic),
    "progress": FlagForm(_progress_flag, lambda args: None if args.progress else False),
    "wandb": FlagForm(_wandb_flags, _wandb_value),
    "pbt": FlagForm(_pbt_flags, _pbt_value),
    "compile_cache": FlagForm(
        _cache_flags, lambda args: False if args.no_compile_cache else (args.compile_cache or True)
    ),
}


def _option_type(hint: Any) -> Any:
    """The flag type of a FitOptions field."""
    if hint is int:
        return _Int
    if hint == int | None:
        return _Int | None
    if Path in typing.get_args(hint):
        return Path | None
    return hint


def fit_option_flags(defaults: dict[str, Any] | None = None) -> list[tuple[str, Any, Any]]:
    """One flag (or a FlagForm's flags) per FitOptions field that can be one, with its
    docstring as help; defaults from `defaults` (a resumed run's saved options)."""
    defaults = defaults or {}
    hints = typing.get_type_hints(FitOptions)
    docs = attribute_docs(FitOptions)
    specs: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(FitOptions):
        if f.name in NOT_FLAGS:
            continue
        default = defaults.get(f.name, _CLI_DEFAULTS.get(f.name, f.default))
        if f.name in _FORMS:
            specs += _FORMS[f.name].flags(default, docs[f.name])
        else:
            specs.append((f.name, _arg(docs[f.name], _option_type(hints[f.name])), default))
    return specs


def fit_options_from_args(args: Any, out: Path | None) -> FitOptions:
    """The FitOptions a parsed `train` command asks for (validated), the mesh built
    for --data-parallel."""
    values = {
        f.name: _FORMS[f.name].value(args) if f.name in _FORMS else getattr(args, f.name)
        for f in dataclasses.fields(FitOptions)
        if f.name not in NOT_FLAGS
    }
    options = FitOptions(**{**values, "out": out})
    if args.data_parallel:
        options = options.replace(mesh=jax.make_mesh((jax.device_count(),), (args.data_axis,)))
    return options


def _train_only_specs() -> list[tuple[str, Any, Any]]:
    return [(n, _arg(h, t), d) for n, t, d, h in _TRAIN_ONLY]


def _config_field_specs(base: Config) -> list[tuple[str, Any, Any]]:
    """One flag per expressible Config field, its default taken from `base`."""
    hints = typing.get_type_hints(Config)
    docs = config_field_docs()
    first = base.unstack()[0]
    specs = []
    for f in dataclasses.fields(Config):
        if f.name in _NOT_ON_CLI:
            continue
        kind = "traced" if f.name in TRACED_FIELDS else "static"
        doc = _CLI_DOCS.get(f.name, docs.get(f.name, ""))
        default = getattr(first, f.name)
        if f.name in TRACED_FIELDS and default is not None:
            default = float(str(np.float32(default)))
        if not isinstance(default, str | int | float | tuple | type(None)):
            default = f.default  # a Python object (an env instance) has no flag form
        specs.append(
            (f.name, _arg(f"{doc} [{kind}]".strip(), _cli_type(f.name, hints[f.name])), default)
        )
    return specs


def _dataclass(name: str, doc: str, specs: list[tuple[str, Any, Any]]) -> type:
    return dataclasses.make_dataclass(
        name,
        [(n, t, dataclasses.field(default=d)) for n, t, d in specs],
        frozen=True,
        namespace={"__doc__": doc},
    )


def make_train_args(base: Config | None = None, defaults: dict[str, Any] | None = None) -> type:
    """The `train` flags: the CLI's own, one per FitOptions field (defaults from
    `defaults`, a resumed run's options) and one per Config field (defaults from
    `base`, e.g. a preset's values)."""
    options = _train_only_specs() + fit_option_flags(defaults)
    return _dataclass(
        "train",
        "Train PPO, printing progress; writes logs, checkpoints, a learning curve and the "
        "final policy to the run directory.",
        options + _config_field_specs(base or Config()),
    )


def make_bench_args(base: Config | None = None) -> type:
    options = [
        ("preset", _arg("Benchmark a preset's config (flags override it).", str | None), None),
        ("seeds", _arg("Seed counts to time (vmapped), one row each.", tuple[int, ...]), (1,)),
        ("out", _arg("Also save the rows as JSON here.", Path | None), None),
    ]
    return _dataclass(
        "bench",
        "Time one-shot train(config) for some seed counts: compile s, env steps/s, final "
        "return (benchmarks/throughput.py adds references and a breakdown).",
        options + _config_field_specs(base or Config()),
    )


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate a saved policy or a run's checkpoint on fresh envs and report returns."""

    path: tyro.conf.Positional[Path]
    """A policy directory (save_policy), a run directory or its checkpoints/ folder."""
    episodes: _Int = 100
    """Episodes per run."""
    stochastic: bool = False
    """Sample actions instead of taking the mode."""
    seed: _Int = 0
    """Seed of the evaluation envs."""
    step: _Int | None = None
    """Checkpoint (update count) to evaluate instead of the latest."""


@dataclasses.dataclass(frozen=True)
class RenderArgs:
    """Render one episode of a saved policy or a checkpoint: a GIF for gymnax envs; an
    MP4 (or GIF, or for Brax the viewer's HTML page) for Brax and Playground envs."""

    path: tyro.conf.Positional[Path]
    """A policy directory (save_policy), a run directory or its checkpoints/ folder."""
    out: Path | None = None
    """Output file: .gif, .mp4 or .html (default: episode.gif for gymnax, episode.mp4 for
    Brax and Playground, next to the input)."""
    run: _Int = 0
    """Which run of a multi-seed or sweep checkpoint to render."""
    seed: _Int = 0
    """Seed of the episode."""
    stochastic: bool = False
    """Sample actions instead of taking the mode."""
    max_steps: _Int | None = None
    """Stop after this many steps (default: the episode's end)."""
    step: _Int | None = None
    """Checkpoint (update count) to render instead of the latest."""


@dataclasses.dataclass(frozen=True)
class ExportArgs:
    """Export a saved policy (or one run of a checkpoint) as a file that acts without
    purejaxppo: ONNX (jax2onnx; run it with onnxruntime) or a jax.export StableHLO
    artifact; the deterministic policy with its observation normaliser baked in."""

    path: tyro.conf.Positional[Path]
    """A policy directory (save_policy), a run directory or its checkpoints/ folder."""
    format: Literal["onnx", "stablehlo", "mlir"] = "onnx"
    """onnx; stablehlo (jax.export's serialised bytes, for jax.export.deserialize); or
    mlir (the StableHLO module as text)."""
    out: Path | None = None
    """Output file (default: policy.onnx, policy.jax or policy.mlir in PATH)."""
    run: _Int = 0
    """Which run of a multi-seed or sweep checkpoint to export."""
    step: _Int | None = None
    """Checkpoint (update count) to export instead of the latest."""


@dataclasses.dataclass(frozen=True)
class PresetsArgs:
    """List the presets with their sources, published and last measured returns; with a
    NAME, print that preset as a YAML file of Config fields (usable with --config)."""

    name: tyro.conf.Positional[str | None] = None
    """A preset (e.g. Acrobot-v1); none lists them all."""


def run_presets(args: PresetsArgs) -> int:
    import yaml

    from purejaxppo.presets import PRESETS, measured_returns

    if args.name is not None:
        config = Config.preset(args.name)  # a ValueError naming close matches if unknown
        print(f"# Config.preset({args.name!r}): {PRESETS[args.name].source}")
        if PRESETS[args.name].note:
            print(f"# note: {PRESETS[args.name].note}")
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    measured = measured_returns()
    for name, preset in PRESETS.items():
        print(name)
        print(f"  source:    {preset.source}")
        if preset.published:
            print(f"  published: {preset.published}")
        if name in measured:
            print(f"  measured:  {measured[name]}")
        if preset.note:
            print(f"  note:      {preset.note}")
    return 0


# ---- building the Config from flags ---------------------------------------------------


def _peek(argv: Sequence[str], flag: str) -> str | None:
    """The value of `--flag V` / `--flag=V` in argv (last one wins), without parsing."""
    value = None
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def _load_yaml(path: Path) -> Config:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"--config={path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"--config={path}: not valid YAML ({e})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"--config={path}: must be a mapping of Config fields, got {data!r}")
    preset = data.pop("preset", None)
    try:
        if preset is not None:
            return Config.preset(preset, **data)
        return Config.from_dict(data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--config={path}: {e}") from None


def _base_config(argv: Sequence[str]) -> tuple[Config, dict[str, Any]]:
    """The config the flags start from (resumed run, YAML file, preset or defaults) and
    the runner-option defaults (a resumed run's own)."""
    resume = _peek(argv, "--resume")
    if resume is not None:
        for flag in ("--preset", "--config", "--sweep"):
            if _peek(argv, flag) is not None or flag in argv:
                raise ValueError(
                    f"--resume={resume} continues that run with its own config; {flag} "
                    "cannot change it (start a new run instead)"
                )
        from purejaxppo.io.checkpoints import Checkpointer, checkpoint_dir

        if not Path(resume).is_dir():
            raise ValueError(f"--resume={resume}: no such run directory")
        step = _peek(argv, "--resume-step")
        checkpointer = Checkpointer(checkpoint_dir(resume), keep=None, create=False)
        _, meta = checkpointer.read_meta(None if step is None else _int_from_str([step]))
        if meta.get("config") is None:
            raise ValueError(
                f"--resume={resume}: its config holds Python objects; resume it from Python"
            )
        defaults = resume_defaults(meta)
        return Config.from_dict(meta["config"]), defaults
    path = _peek(argv, "--config")
    if path is not None:
        if _peek(argv, "--preset") is not None:
            raise ValueError("--config and --preset both set the starting config; use one")
        return _load_yaml(Path(path)), {}
    preset = _peek(argv, "--preset")
    if preset is not None:
        return Config.preset(preset), {}
    return Config(), {}


def _overrides(args: Any, base: Config) -> dict[str, Any]:
    """Config fields whose flag value differs from the base config's."""
    first = base.unstack()[0]
    changed = {}
    for f in dataclasses.fields(Config):
        if f.name in _NOT_ON_CLI or not hasattr(args, f.name):
            continue
        new, old = getattr(args, f.name), getattr(first, f.name)
        if f.name in TRACED_FIELDS and new is not None and old is not None:
            same = np.float32(new) == np.float32(old)
        else:
            same = new == old
        if not same:
            changed[f.name] = new
    return changed


def _apply(base: Config, changes: dict[str, Any]) -> Config:
    if base.batch_shape:
        # A batched base (a sweep's config.yaml): a flag sets that field for every entry.
        changes = {
            n: np.full(base.batch_shape, v, np.float32)
            if n in TRACED_FIELDS and v is not None
            else v
            for n, v in changes.items()
        }
    return base.replace(**changes) if changes else base


def parse_sweep(items: Sequence[str]) -> dict[str, list[float]]:
    """`["lr=1e-3,3e-4", "ent-coef=0,0.01"]` -> {"lr": [...], "ent_coef": [...]}."""
    grids: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        field = name.strip().lstrip("-").replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"--sweep {item!r}: write NAME=V1,V2,... (e.g. lr=1e-3,3e-4)")
        if field not in TRACED_FIELDS:
            known = [f.name for f in dataclasses.fields(Config)]
            why = (
                "it is a static field (it changes the compiled program); run one command "
                "per value instead"
                if field in known
                else "no such Config field"
            )
            raise ValueError(
                f"--sweep {item!r}: only traced hyperparameters can be swept in one "
                f"compile, and {field} is not one: {why} (traced: {', '.join(TRACED_FIELDS)})"
            )
        try:
            grids[field] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"--sweep {item!r}: values must be numbers") from None
        if field in grids and len(set(grids[field])) != len(grids[field]):
            raise ValueError(f"--sweep {item!r}: repeated values")
    return grids


def _check_counts(args: Any, names: Sequence[str]) -> None:
    for name in names:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)}: must be >= 1")
    if hasattr(args, "seed") and not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed={args.seed}: must be in [0, 2**32)")


def build_train_config(args: Any, base: Config) -> Config:
    """The Config a parsed `train` command asks for (base + flags + sweep)."""
    config = _apply(base, _overrides(args, base))
    if args.sweep:
        if config.batch_shape:
            raise ValueError(
                "--sweep: the starting config is already a sweep; give one or the other"
            )
        config = Config.sweep(config, **parse_sweep(args.sweep))
    return config


def _cli_error(message: str) -> str:
    """Config's messages name `Config.field=value`; on the CLI say `--field=value`."""
    message = message.replace(" (or pass a gymnax Environment instance)", "")
    return re.sub(
        r"(?:Config|FitOptions)\.(\w+)=", lambda m: f"--{m.group(1).replace('_', '-')}=", message
    )


def _fmt(x: float) -> str:
    return "n/a (no episode ended)" if math.isnan(x) else f"{x:.1f}"


# ---- commands -------------------------------------------------------------------------


def _error(e: BaseException, status: int = 2) -> int:
    print(f"error: {_cli_error(str(e))}", file=sys.stderr)
    return status


def _train_setup(args: Any, base: Config) -> tuple[Config, FitOptions]:
    """The Config and FitOptions of a parsed `train` command (ValueError if invalid)."""
    from purejaxppo.runner.layout import default_run_dir

    config = build_train_config(args, base)
    _check_counts(args, ())
    if args.wandb_mode not in ("online", "offline", "disabled"):
        raise ValueError(f"--wandb-mode={args.wandb_mode}: must be online, offline or disabled")
    out = args.out
    if out is None and args.resume is None:
        out = default_run_dir(config)
    return config, fit_options_from_args(args, out)


def _announce(config: Config, options: FitOptions, num_runs: int) -> None:
    from purejaxppo.io.checkpoints import checkpoint_dir

    what = f"{num_runs} runs" if num_runs > 1 else "1 run"
    action = f"resuming {options.resume}" if options.resume is not None else "training"
    where = options.out or checkpoint_dir(options.resume).parent
    print(
        f"{action}: {config.env}, {config.num_updates} updates x {config.batch_size} steps = "
        f"{config.num_updates * config.batch_size:,} env steps per run, {what} "
        f"-> {where} (compiling first)",
        flush=True,
    )
    if options.mesh is not None:
        print(
            f"data-parallel over {jax.device_count()} devices in {jax.process_count()} "
            f"process(es); this is process {jax.process_index()}",
            flush=True,
        )


def run_train(args: Any, base: Config) -> int:
    """Build the Config from parsed flags, train with `fit`, print progress and a summary."""
    from purejaxppo.io.checkpoints import CheckpointError
    from purejaxppo.runner.fit import NonFiniteError, fit, run_labels

    try:
        config, options = _train_setup(args, base)
    except (ValueError, TypeError, ImportError) as e:
        return _error(e)
    num_seeds = options.num_seeds or 1
    runs = run_labels(config, num_seeds)
    _announce(config, options, len(runs))
    start = time.perf_counter()
    try:
        result = fit(config, args.seed, options)
    except (ValueError, TypeError, ImportError) as e:
        return _error(e)
    except (CheckpointError, NonFiniteError, OSError, RuntimeError) as e:
        return _error(e, status=1)
    total = time.perf_counter() - start
    if jax.process_index() != 0:
        print(f"process {jax.process_index()} done in {total:.1f} s (process 0 writes the files)")
        return 0
    _print_summary(config, num_seeds, runs, result)
    print(
        f"total time {total:.1f} s (compile {result.compile_seconds:.1f} s, "
        f"{result.steps_per_second:,.0f} env steps/s after compiling)"
    )
    print(
        f"run directory: {result.run_dir} (metrics.csv, learning_curve.png, checkpoints/, policy)"
    )
    return 0


def _print_summary(config: Config, num_seeds: int, runs: list[dict], result: Any) -> None:
    from purejaxppo.runner.layout import nanmean

    returns = np.reshape(result.metrics["episode_return"], (len(runs), -1))
    per_run = np.array([nanmean(r[-FINAL_UPDATES:]) for r in returns])
    head = f"final return (mean of last {FINAL_UPDATES} updates)"
    num_configs = len(runs) // num_seeds
    for c in range(num_configs):
        group = per_run[c * num_seeds : (c + 1) * num_seeds]
        label = runs[c * num_seeds]
        swept = {k: v for k, v in label.items() if k not in ("run", "config", "seed")}
        where = f" [{', '.join(f'{k}={v:g}' for k, v in swept.items())}]" if swept else ""
        if num_seeds == 1:
            print(f"{head}{where}: {_fmt(group[0])}")
        else:
            finite = group[~np.isnan(group)]
            worst = float(finite.min()) if finite.size else math.nan
            print(
                f"{head}{where} over {num_seeds} seeds: mean {_fmt(nanmean(group))}, "
                f"min {_fmt(worst)}"
            )
    if result.evals is not None:
        ev = np.reshape(result.evals.returns[..., -1, :], (len(runs), -1)).mean(axis=-1)
        print(f"final evaluation return: mean {ev.mean():.1f} over {len(runs)} run(s)")


def _load_for_acting(path: Path, step: int | None, run: int | None, deterministic: bool):
    """(config, act, state-or-None, policy-or-None) for eval/render from a policy
    directory or a run's checkpoint."""
    from purejaxppo.acting.export import load_policy
    from purejaxppo.acting.policy import make_policy
    from purejaxppo.runner.resume import load_run

    path = Path(path)
    if (path / "policy.json").exists():
        policy = load_policy(path, deterministic=deterministic)
        return policy.config, policy, None
    if not path.exists():
        raise ValueError(f"{path}: no such policy or run directory")
    loaded = load_run(path, step)
    if run is None:
        return loaded.config, None, loaded
    config, state = _one_run(loaded, run)
    return config, make_policy(config, state, deterministic), None


def _one_run(loaded: Any, run: int) -> tuple[Config, Any]:
    """(config, state) of run `run` of a loaded checkpoint (runs are numbered config
    by config, seed by seed)."""
    from purejaxppo.runner.layout import RunLayout

    layout = RunLayout.of(loaded.config, loaded.num_seeds)
    n = layout.num_runs
    if not 0 <= run < n:
        raise ValueError(f"--run={run}: the checkpoint holds {n} runs (0..{n - 1})")
    return layout.one_run(loaded.config, loaded.state, layout.labels[run])


def run_eval(args: EvalArgs) -> int:
    """Evaluate every run of a checkpoint, or a saved policy, and print its returns."""
    from purejaxppo.acting.policy import evaluate_params
    from purejaxppo.io.checkpoints import CheckpointError
    from purejaxppo.runner.layout import run_labels
    from purejaxppo.runner.program import eval_runs_jit

    try:
        _check_counts(args, ("episodes",))
        config, policy, loaded = _load_for_acting(args.path, args.step, None, not args.stochastic)
    except (ValueError, TypeError, ImportError, FileNotFoundError, CheckpointError) as e:
        return _error(e)
    key = jax.random.key(args.seed)
    mode = "stochastic" if args.stochastic else "deterministic"
    if policy is not None:
        result = evaluate_params(
            config, policy.params, policy.obs_stats, key, args.episodes, not args.stochastic
        )
        returns = np.asarray(result.returns)[None]
        lengths = np.asarray(result.lengths)[None]
        names = [str(args.path)]
        print(f"{config.env}: policy {args.path}, {args.episodes} {mode} episodes")
    else:
        seeds, sweep = loaded.num_seeds > 1, config.batch_shape != ()
        batch = loaded.state.update_step.shape
        n = int(np.prod(batch)) if batch else 1
        keys = jax.random.split(key, n)
        keys = keys.reshape(batch) if batch else keys[0]
        result = eval_runs_jit(
            config, loaded.state, keys, args.episodes, not args.stochastic, seeds, sweep
        )
        returns = np.asarray(result.returns).reshape(n, -1)
        lengths = np.asarray(result.lengths).reshape(n, -1)
        labels = run_labels(config, loaded.num_seeds)
        names = [f"run {lab['run']} (config {lab['config']}, seed {lab['seed']})" for lab in labels]
        print(
            f"{config.env}: checkpoint {loaded.path} (update {loaded.update}), "
            f"{args.episodes} {mode} episodes per run"
        )
    for name, r, ln in zip(names, returns, lengths, strict=True):
        print(
            f"{name}: return mean {r.mean():.2f} std {r.std():.2f} min {r.min():.2f} "
            f"max {r.max():.2f} | length mean {ln.mean():.1f}"
        )
    if len(names) > 1:
        print(f"all runs: return mean {returns.mean():.2f}")
    return 0


def run_render(args: RenderArgs) -> int:
    """Write one episode as a GIF (gymnax) or an MP4, GIF or HTML page (Brax, Playground)."""
    from purejaxppo.acting.render import default_suffix, render_episode
    from purejaxppo.io.checkpoints import CheckpointError

    try:
        config, act, _ = _load_for_acting(args.path, args.step, args.run, not args.stochastic)
        out = args.out
        if out is None:
            out = Path(args.path) / f"episode{default_suffix(config)}"
        result = render_episode(config, act, out, jax.random.key(args.seed), args.max_steps)
    except (ValueError, TypeError, ImportError, FileNotFoundError, CheckpointError) as e:
        return _error(e)
    print(f"wrote {result.path}: return {float(result.episode_return):.2f}, length {result.length}")
    return 0


def run_export(args: ExportArgs) -> int:
    """Write a policy (or one run of a checkpoint) as an ONNX or StableHLO file."""
    from purejaxppo.acting.deploy import export_onnx, export_stablehlo
    from purejaxppo.acting.export import Policy, load_policy
    from purejaxppo.core.setup import make_setup
    from purejaxppo.io.checkpoints import CheckpointError
    from purejaxppo.runner.resume import load_run

    suffix = {"onnx": ".onnx", "stablehlo": ".jax", "mlir": ".mlir"}[args.format]
    try:
        path = Path(args.path)
        if (path / "policy.json").exists():
            policy = load_policy(path, deterministic=True)
        elif not path.exists():
            raise ValueError(f"{path}: no such policy or run directory")
        else:
            config, state = _one_run(load_run(path, args.step), args.run)
            spec = make_setup(config).spec
            policy = Policy(config, spec, state.params, state.obs_stats, True)
        out = args.out if args.out is not None else path / f"policy{suffix}"
        if args.format == "onnx":
            written = export_onnx(policy, out)
        else:
            if out.suffix.lower() == ".mlir" and args.format != "mlir":
                raise ValueError(f"--out={out}: a .mlir file is --format mlir")
            if args.format == "mlir" and out.suffix.lower() != ".mlir":
                raise ValueError(f"--out={out}: --format mlir writes a .mlir file")
            written = export_stablehlo(policy, out)
    except (ValueError, TypeError, ImportError, FileNotFoundError, CheckpointError) as e:
        return _error(e)
    print(f"wrote {written} ({args.format}, deterministic policy of {policy.config.env})")
    return 0


def run_bench(args: Any, base: Config) -> int:
    """Time one-shot train for each seed count and print (and save) the rows."""
    from purejaxppo.runner.bench import bench_train, format_row, machine_info, warm_up

    try:
        config = _apply(base, _overrides(args, base))
        if not args.seeds or min(args.seeds) < 1:
            raise ValueError(f"--seeds={list(args.seeds)}: give positive seed counts")
    except (ValueError, TypeError, ImportError) as e:
        return _error(e)
    print(
        f"bench: {config.env}, {config.num_updates} updates x {config.batch_size} steps "
        f"on {jax.devices()[0].platform}",
        flush=True,
    )
    warm_up()
    rows = []
    for seeds in args.seeds:
        row = bench_train(config, seeds)
        rows.append(row)
        print(format_row(row), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine_info(), "config": config.to_dict(), "runs": rows}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"saved {args.out}")
    return 0


def _maybe_initialize_distributed(argv: Sequence[str]) -> int:
    """Join the multi-process runtime when --coordinator/--num-processes/--process-id
    are given (or JAX detects a cluster and --num-processes is given); 0 when fine."""
    values = {
        flag: _peek(argv, flag) for flag in ("--coordinator", "--num-processes", "--process-id")
    }
    if all(v is None for v in values.values()):
        return 0
    from purejaxppo.scale.distributed import initialize

    try:
        initialize(
            values["--coordinator"],
            None
            if values["--num-processes"] is None
            else _int_from_str([values["--num-processes"]]),
            None if values["--process-id"] is None else _int_from_str([values["--process-id"]]),
        )
    except (ValueError, TypeError, RuntimeError) as e:
        return _error(e)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `purejaxppo` command and of `python -m purejaxppo`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    helping = bool({"-h", "--help"} & set(argv))
    try:
        if command == "train" and not helping:
            # Before anything imports gymnax, which starts JAX's backend.
            status = _maybe_initialize_distributed(argv)
            if status:
                return status
        base, defaults = Config(), {}
        if command in ("train", "bench") and not helping:
            try:
                base, defaults = _base_config(argv)
            except Exception as e:  # bad preset, config file or checkpoint: one line
                from purejaxppo.io.checkpoints import CheckpointError

                return _error(e, status=1 if isinstance(e, CheckpointError) else 2)
        if command in ("train", "eval", "render") and not helping:
            if "--no-compile-cache" not in argv:
                try:
                    enable_compile_cache(_peek(argv, "--compile-cache") or True)
                except OSError as e:  # an unwritable cache directory is not fatal
                    print(f"warning: compilation cache off: {e}", file=sys.stderr)
        args = tyro.extras.subcommand_cli_from_dict(
            {
                "train": make_train_args(base, defaults),
                "eval": EvalArgs,
                "render": RenderArgs,
                "export": ExportArgs,
                "bench": make_bench_args(base),
                "presets": PresetsArgs,
            },
            prog="purejaxppo",
            description="purejaxppo: end-to-end compiled PPO in JAX.",
            args=argv,
        )
        if isinstance(args, EvalArgs | RenderArgs):
            with quiet_cache_loads():  # both load compiled programs
                return run_eval(args) if isinstance(args, EvalArgs) else run_render(args)
        if type(args).__name__ == "bench":
            return run_bench(args, base)
        if isinstance(args, ExportArgs):
            return run_export(args)
        if isinstance(args, PresetsArgs):
            try:
                return run_presets(args)
            except ValueError as e:  # an unknown preset: one line naming close ones
                return _error(e)
        return run_train(args, base)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a reader that stopped early (`purejaxppo train --help | head`).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
