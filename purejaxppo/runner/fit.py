"""Host-side training loop: `fit` runs the pure update in jitted chunks and, between
chunks, calls hooks that log, evaluate, checkpoint, guard against NaNs and report.

The arithmetic is exactly that of `train` (the same `init` and `run_updates`): a
chunk of K updates is one compiled call whose input state is donated, so chunked
training ends with the same parameters as one-shot `train(config, key)` (bitwise on
the CPU). Seeds and batched `Config.sweep` configs are vmapped inside each chunk; with
a mesh, one run is data-parallel over it (see `purejaxppo.runner.program`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxppo.config import Config
from purejaxppo.core.types import TrainState
from purejaxppo.io import checkpoints as ckpt
from purejaxppo.runner.hooks import Hook, make_hooks, open_logger
from purejaxppo.runner.layout import (
    RunLayout,
    chunk_lengths,
    default_run_dir,
    label_name,
    nanmean,
    plan_chunk_updates,
    remaining_chunks,
    run_labels,
)
from purejaxppo.runner.options import FitOptions
from purejaxppo.runner.program import eval_runs_jit, make_program
from purejaxppo.runner.results import ChunkReport, EvalHistory, FitResult, NonFiniteError
from purejaxppo.runner.resume import LoadedRun, load_run, open_run, prepare_run_dir, read_checkpoint
from purejaxppo.runner.run import ChunkEvent, EvalLog, Run, concat_metrics

__all__ = [
    "ChunkReport",
    "EvalHistory",
    "FitOptions",
    "FitResult",
    "LoadedRun",
    "NonFiniteError",
    "chunk_lengths",
    "default_run_dir",
    "eval_runs_jit",
    "fit",
    "load_run",
    "nanmean",
    "plan_chunk_updates",
    "run_labels",
]


def fit(
    config: Config, key: jax.Array | int = 0, options: FitOptions | None = None, **kwargs: Any
) -> FitResult:
    """Train like `train(config, key)`, in jitted chunks, with a host loop around them.

    key: a typed key, a legacy PRNGKey or an int seed. With num_seeds > 1 the runs use
    `jax.random.split(key, num_seeds)` and are vmapped; with one seed the run uses
    `key` itself, so it equals `train(config, key)`. A batched config (`Config.sweep`)
    is vmapped too, each config with the same seeds. On resume `key` is unused (the
    state carries its own).

    options: a `FitOptions`; keyword arguments are its fields and override it
    (`fit(config, 0, num_seeds=4, out="runs/x", eval_every=10)`). See `FitOptions` for
    the run directory's files, checkpoints and resume, evaluation, loggers, progress
    and data-parallel training over a mesh.

    A NaN or inf in the losses or parameters raises `NonFiniteError` naming the
    update; no checkpoint is written from the bad state.
    """
    started = time.perf_counter()
    options = FitOptions.build(options, **kwargs)
    if not isinstance(config, Config):
        raise TypeError(f"fit: config must be a purejaxppo.Config, got {config!r}")
    chunk = plan_chunk_updates(
        config.num_updates,
        options.num_chunks,
        options.chunk_updates,
        options.checkpoint_every,
        options.eval_every,
        options.video_every,
    )
    if options.video_every:  # an env that cannot be drawn here fails before compiling
        from purejaxppo.acting.render import video_suffix
        from purejaxppo.io.cache import quiet_cache_loads

        with quiet_cache_loads():  # resolving a Brax env runs (cached) programs
            video_suffix(config.unstack()[0])
    # 1. Open or resume the run: the checkpoint is read and checked before any write.
    opened = open_run(config, options)
    # 2. Lay out seeds x sweep points; 3. the program for that layout (checked first).
    layout = RunLayout.of(config, opened.num_seeds)
    program = make_program(config, layout, options.mesh, options.data_axis, options.pbt)
    if options.compile_cache:
        from purejaxppo.io.cache import enable_compile_cache

        enable_compile_cache(options.compile_cache)
    restored = program.quietly(read_checkpoint, opened, config, options.pbt)
    arrays = restored.arrays if restored is not None else {}
    state, eval_root = program.start(
        key, arrays.get("state"), opened.meta["eval_key"] if opened.meta else None
    )
    run = Run(
        config=config,
        options=options,
        layout=layout,
        program=program,
        state=state,
        eval_root=eval_root,
        done=opened.done,
        remaining=remaining_chunks(opened.done, config.num_updates, chunk),
        out=opened.out,
        run_dir=opened.run_dir,
        checkpointer=prepare_run_dir(opened, ckpt.plain_config(config), options),
        history=[arrays["metrics"]] if opened.done else [],
        evals=EvalLog.restored(arrays.get("eval")),
        last_checkpoint=opened.last_checkpoint,
        started=started,
    )
    logger = open_logger(run, opened.run_dir, opened.done if opened.continuing else None)
    eval_episodes = options.eval_episodes if options.eval_every else None
    program.build(state, run.remaining, eval_root, eval_episodes, options.eval_deterministic)
    run.compile_seconds = time.perf_counter() - started
    # 4. Loop over the chunks, calling the hooks after each.
    hooks = make_hooks(run, logger)
    loop_start = time.perf_counter()
    try:
        train_chunks(run, hooks)
    finally:
        for hook in hooks:
            hook.close(run)
    # 5. Finish: the learning curve and the policies, and the result.
    return finish(run, loop_seconds=time.perf_counter() - loop_start)


def train_chunks(run: Run, hooks: list[Hook]) -> None:
    """Train the remaining chunks of `run`, each followed by every hook; stop early
    when a callback asks to (all processes agree)."""
    for hook in hooks:
        hook.on_start(run)
    for index, n in enumerate(run.remaining, start=1):
        t0 = time.perf_counter()
        run.state, metrics, params_finite = run.program.chunk(run.state, n)
        seconds = time.perf_counter() - t0
        event = ChunkEvent(index, run.done + 1, n, seconds, metrics, params_finite)
        run.run_seconds += seconds
        run.done += n
        run.trained_updates += n
        run.history.append(metrics)
        for hook in hooks:
            hook.on_chunk(run, event)
        if run.program.agree(event.stop):
            for hook in hooks:
                hook.on_stop(run, event)
            return


def finish(run: Run, loop_seconds: float) -> FitResult:
    """Write the final files (process 0) and assemble the FitResult."""
    metrics = concat_metrics(run.history)
    evals = run.evals.history()
    if run.out is not None:
        # A collective when data-parallel: every process gathers, process 0 writes.
        host = run.program.host_state(run.state)
        if run.run_dir is not None:
            run.program.quietly(
                finish_files, run.run_dir, run.config, host, metrics, evals, run.layout,
                plot=run.options.plot, export_policy=run.options.export_policy,
            )  # fmt: skip
    steps = run.trained_updates * run.config.batch_size * run.layout.num_runs
    return FitResult(
        state=run.state,
        metrics=metrics,
        evals=evals,
        run_dir=run.run_dir,
        compile_seconds=run.compile_seconds,
        run_seconds=run.run_seconds,
        steps_per_second=steps / run.run_seconds if run.run_seconds > 0 else float("nan"),
        loop_seconds=loop_seconds,
    )


def finish_files(
    run_dir: Path,
    config: Config,
    state: TrainState,
    metrics: dict[str, np.ndarray],
    evals: EvalHistory | None,
    layout: RunLayout,
    plot: bool = True,
    export_policy: bool = True,
) -> None:
    """The learning-curve PNG and the exported policies, at the end of a run."""
    if plot and metrics:
        from purejaxppo.io.plots import plot_learning_curves

        updates = metrics["episode_return"].shape[-1]
        eval_points = None
        if evals is not None:
            eval_points = (
                evals.updates * config.batch_size,
                layout.flat(evals.returns.mean(axis=-1)),
            )
        plot_learning_curves(
            run_dir / "learning_curve.png",
            np.arange(1, updates + 1) * config.batch_size,
            layout.flat(metrics["episode_return"]),
            layout.labels,
            eval_points=eval_points,
            title=str(config.env),
        )
    if export_policy and ckpt.plain_config(config) is not None:
        from purejaxppo.acting.export import save_policy

        for label in layout.labels:
            many = run_dir / "policies" / label_name(label)
            save_policy(
                run_dir / "policy" if len(layout.labels) == 1 else many,
                *layout.one_run(config, state, label),
            )
