"""What `fit` does between chunks, one hook per concern (in the style of
Stable-Baselines3's callbacks): logging, the non-finite guard, evaluation,
checkpoints, videos, the progress bar and verbose lines, and the user's callbacks.

Each hook sees the `Run` and the `ChunkEvent` of the chunk just trained, in the order
of `make_hooks`; a hook annotates the event (its evaluation return, its checkpoint,
a request to stop) for the hooks after it. `on_stop` runs on every hook when the run
is stopped early, `close` always (also after an error).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from purejaxppo.io import checkpoints as ckpt
from purejaxppo.io.cache import quiet_cache_loads
from purejaxppo.runner.layout import label_name
from purejaxppo.runner.results import ChunkReport, InvalidMaskError, NonFiniteError
from purejaxppo.runner.run import ChunkEvent, Run

# Losses checked by the non-finite guard (explained_variance may be NaN legitimately).
GUARDED_METRICS = ("policy_loss", "value_loss", "entropy")


class Hook:
    """A step of the host loop; every method is optional."""

    def on_start(self, run: Run) -> None:
        """After compiling, before the first chunk."""

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        """After each chunk."""

    def on_stop(self, run: Run, event: ChunkEvent) -> None:
        """A callback stopped the run after `event` (all processes agree)."""

    def close(self, run: Run) -> None:
        """At the end of the loop, also after an error."""


class LogHook(Hook):
    """Per-update metrics and evaluations to the run directory's logs (process 0)."""

    def __init__(self, logger: Any):
        self.logger = logger

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        steps = event.n * run.config.batch_size * run.layout.num_runs
        self.logger.log_updates(
            event.first,
            run.config.batch_size,
            run.layout.flat(event.metrics),
            fps=steps / max(event.seconds, 1e-9),
            wall_time=time.perf_counter() - run.started,
        )

    def log_eval(self, run: Run, update: int, returns: np.ndarray, lengths: np.ndarray) -> None:
        flat = run.layout.flat
        self.logger.log_eval(update, update * run.config.batch_size, flat(returns), flat(lengths))

    def close(self, run: Run) -> None:
        self.logger.close()


def first_non_finite(metrics: dict[str, np.ndarray]) -> tuple[str, int, int] | None:
    """(metric, run, update index in the chunk) of the earliest non-finite guarded loss."""
    worst = None
    for name in GUARDED_METRICS:
        flat = np.reshape(metrics[name], (-1, np.shape(metrics[name])[-1]))  # [R, K]
        bad = np.argwhere(~np.isfinite(flat))
        if bad.size:
            run, k = bad[np.argmin(bad[:, 1])]
            if worst is None or k < worst[2]:
                worst = (name, int(run), int(k))
    return worst


def check_masks(run: Run, event: ChunkEvent) -> None:
    """Raise InvalidMaskError at the first update whose env steps included an action
    mask with no legal action (the policy cannot act legally on one)."""
    counts = event.metrics.get("empty_action_masks")
    if counts is None:
        return
    flat = np.reshape(counts, (-1, np.shape(counts)[-1]))  # [R, K]
    bad = np.argwhere(flat > 0)
    if not bad.size:
        return
    index, k = bad[np.argmin(bad[:, 1])]
    labels = run.layout.labels
    where = "" if len(labels) == 1 else f" in run {label_name(labels[index])} {labels[index]}"
    raise InvalidMaskError(
        f"Config.env={run.config.env!r}: {int(flat[index, k])} env steps of update "
        f"{event.first + int(k)}{where} had an action mask with no legal action; an env "
        "must leave at least one action (per sub-action) legal at every step; "
        f"{run.last_checkpoint}"
    )


class GuardHook(Hook):
    """Stop with NonFiniteError naming the first update whose losses (or the
    parameters after the chunk) are not finite; no checkpoint is written from it."""

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        check_masks(run, event)
        worst = first_non_finite(event.metrics)
        if worst is None and event.params_finite:
            return
        labels = run.layout.labels
        if worst is not None:
            name, index, k = worst
            what, who = f"non-finite {name} at update {event.first + k}", labels[index]
        else:
            what, who = f"non-finite parameters after update {event.done}", None
        where = "" if len(labels) == 1 or who is None else f" in run {label_name(who)} {who}"
        raise NonFiniteError(
            f"{what}{where}: training stopped (try a lower lr or max_grad_norm, or check the "
            f"scale of rewards and observations); {run.last_checkpoint}"
        )


class EvalHook(Hook):
    """Evaluate every run every `eval_every` updates and at the end."""

    def __init__(self, every: int, log: LogHook | None):
        self.every, self.log = every, log

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        done = event.done
        if done % self.every and done != run.num_updates:
            return
        result = run.program.evaluate(run.state, jax.random.fold_in(run.eval_root, done))
        run.evals.updates.append(done)
        run.evals.returns.append(result.returns)
        run.evals.lengths.append(result.lengths)
        event.eval_return = float(np.mean(result.returns))
        if self.log is not None:
            self.log.log_eval(run, done, result.returns, result.lengths)


# Mixed into the evaluation key so that a video's episode is not an evaluation episode.
VIDEO_KEY_SALT = 0x766964


class VideoHook(Hook):
    """One episode of the first run's deterministic policy drawn to
    <run_dir>/videos/update_<N> every `every` updates and at the end. Every process
    gathers the state (a collective when data-parallel); process 0 draws. A failed
    drawing is a warning: it never stops the training."""

    def __init__(self, every: int, max_steps: int | None, suffix: str, say: Callable[[str], None]):
        self.every, self.max_steps, self.suffix, self.say = every, max_steps, suffix, say

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        done = event.done
        if done % self.every and done != run.num_updates:
            return
        with quiet_cache_loads():  # gathering and the episode run (cached) programs
            host = run.program.host_state(run.state)
            if run.run_dir is not None:
                self._draw(run, host, done)

    def _draw(self, run: Run, host: Any, done: int) -> None:
        from purejaxppo.acting.policy import make_policy
        from purejaxppo.acting.render import render_episode

        path = run.run_dir / "videos" / f"update_{done:07d}{self.suffix}"
        try:
            config, state = run.layout.one_run(run.config, host, run.layout.labels[0])
            key = jax.random.fold_in(jax.random.fold_in(run.eval_root, done), VIDEO_KEY_SALT)
            act = make_policy(config, state, deterministic=True)
            result = render_episode(config, act, path, key, self.max_steps)
        except Exception as e:  # a video is not worth the run
            warnings.warn(f"video of update {done} not written: {e}", stacklevel=1)
            return
        self.say(f"video {result.path}: return {result.episode_return:.1f}, {result.length} steps")


class CheckpointHook(Hook):
    """Checkpoints every `checkpoint_every` updates, or `checkpoint_seconds` apart, at
    the end, and when stopped early. Every process takes part (gathering a sharded
    state is a collective); process 0 writes."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.last_save = 0.0
        self.saved_update = -1  # the update of the last save, the same on every process

    def on_start(self, run: Run) -> None:
        self.last_save = time.perf_counter()

    def _due(self, run: Run, done: int) -> bool:
        every = run.options.checkpoint_every
        if done == run.num_updates or (every and done % every == 0):
            return True
        late = time.perf_counter() - self.last_save >= run.options.checkpoint_seconds
        return every is None and late

    def _save(self, run: Run, event: ChunkEvent) -> None:
        host = run.program.host_state(run.state)
        self.saved_update = event.done
        if run.checkpointer is not None:
            event.checkpoint = run.save(event.done, host)
            self.last_save = time.perf_counter()

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        # The clocks of a time-based cadence differ between processes: process 0 decides.
        if run.program.agree(self._due(run, event.done)):
            self._save(run, event)

    def on_stop(self, run: Run, event: ChunkEvent) -> None:
        # Not event.checkpoint: only process 0 writes one, but all must join the gather.
        if self.saved_update != event.done:
            self._save(run, event)
            if event.checkpoint is not None:
                where = f"checkpoint {event.checkpoint}"
                self.say(f"stopped by a callback after update {event.done}; {where}")


class ProgressHook(Hook):
    """A tqdm bar on stderr and/or one printed line per chunk (verbose)."""

    def __init__(self, progress: bool | None, verbose: bool):
        self.show = progress or (progress is None and sys.stderr.isatty())
        self.verbose = verbose
        self.bar = None

    def say(self, line: str) -> None:
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def on_start(self, run: Run) -> None:
        if self.show:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=run.num_updates, initial=run.done, unit="update", dynamic_ncols=True
            )

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        report = run.report(event)
        self.say(str(report))
        if self.bar is not None:
            self.bar.update(event.n)
            self.bar.set_postfix_str(
                f"steps {report.env_steps:,} | {report.steps_per_second:,.0f}/s | "
                f"return {report.recent_return:.1f}",
                refresh=True,
            )

    def close(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.close()


class CallbackHook(Hook):
    """The user's callbacks; one returning False stops the run after this chunk."""

    def __init__(self, callbacks: Sequence[Callable[[ChunkReport], bool | None]]):
        self.callbacks = callbacks

    def on_chunk(self, run: Run, event: ChunkEvent) -> None:
        report = run.report(event)
        # Every callback sees the report (a list, not a short-circuiting any()).
        answers = [callback(report) for callback in self.callbacks]
        event.stop = any(answer is False for answer in answers)


def make_hooks(run: Run, logger: Any) -> list[Hook]:
    """The hooks of a run, in the order they see each chunk."""
    options = run.options
    progress = ProgressHook(options.progress, options.verbose)
    log = None if logger is None else LogHook(logger)
    hooks: list[Hook] = [] if log is None else [log]
    hooks.append(GuardHook())
    if options.eval_every:
        hooks.append(EvalHook(options.eval_every, log))
    if run.out is not None:
        hooks.append(CheckpointHook(progress.say))
    if options.video_every and run.out is not None:
        from purejaxppo.acting.render import video_suffix

        with quiet_cache_loads():
            suffix = video_suffix(run.config.unstack()[0])
        hooks.append(VideoHook(options.video_every, options.video_max_steps, suffix, progress.say))
    hooks += [progress, CallbackHook(options.callbacks)]
    return hooks


def open_logger(run: Run, run_dir: Any, resume_from: int | None) -> Any:
    """The RunLogger of the run directory (process 0), or None."""
    if run_dir is None:
        return None
    from purejaxppo.io.loggers import RunLogger

    options = run.options
    return RunLogger(
        run_dir,
        run.layout.labels,
        tensorboard=options.tensorboard,
        wandb=options.wandb,
        config=ckpt.plain_config(run.config),
        resume_from_update=resume_from,
    )
