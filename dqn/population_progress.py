"""The population's progress: a bar over env steps with the members running, or a callback."""

from __future__ import annotations

import numpy as np

from dqn.terminal import progress_bar

REPORT_EVERY = 250  # env steps between two updates of the bar or two callbacks


class _Silent:
    def __call__(self, step: int, running: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar:
    """One bar for the whole population: its env steps, the members still running, and how
    many have solved; tqdm's ETA is the population's."""

    def __init__(self, loop) -> None:
        self.loop = loop
        total = loop.slots[0].config.total_env_steps
        self.bar = progress_bar(total, initial=loop.step, desc=f"{len(loop.slots)} members")
        self.shown = loop.step

    def __call__(self, step: int, running: int) -> None:
        if step - self.shown < REPORT_EVERY:
            return
        evals = [s.loop.eval_mean for s in self.loop.slots if s.stopped is None]
        solved = sum(s.loop.first_solve is not None for s in self.loop.slots)
        # "-" until a running member has been evaluated (a NaN there read as a broken run)
        median = f"{np.nanmedian(evals):.0f}" if np.isfinite(evals).any() else "-"
        self.bar.set_postfix(running=running, solved=solved, eval_median=median, refresh=False)
        self.bar.update(step - self.shown)
        self.shown = step

    def close(self) -> None:
        self.bar.update(self.loop.step - self.shown)
        self.bar.close()


class _Callback:
    """Calls ``fn(env_steps)`` with the member env steps done since the last call."""

    def __init__(self, fn, loop) -> None:
        self.fn, self.shown, self.loop = fn, loop.step, loop

    def __call__(self, step: int, running: int) -> None:
        if step - self.shown >= REPORT_EVERY:
            self.fn((step - self.shown) * running)
            self.shown = step

    def close(self) -> None:
        running = sum(s.stopped is None for s in self.loop.slots)
        if self.loop.step > self.shown:
            self.fn((self.loop.step - self.shown) * max(running, 1))
        self.shown = self.loop.step


def progress_reporter(progress, loop):
    if progress is True:
        return _Bar(loop)
    if callable(progress):
        return _Callback(progress, loop)
    return _Silent()


__all__ = ["progress_reporter"]
