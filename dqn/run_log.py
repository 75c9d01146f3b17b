"""What a run reports while it trains: metrics.csv rows (and ``read_metrics``, which reads them
back for a study's row and report), TensorBoard, the progress bar, the window of update metrics
between two rows, summary.json, and SIGINT/SIGTERM as a flag."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dqn.errors import CheckpointError, SignalInterrupt, op_error_reason
from dqn.finite import F32_MAX
from dqn.io import atomic_write_text, strict_json
from dqn.run_state import LoopState, metrics_csv_rows
from dqn.step_metrics import IS_MAX_METRIC, METRIC_NAMES
from dqn.terminal import progress_bar

# ``progress`` as a callable: called with the env steps (summed over a population's members)
# just taken, where a bar would have moved by as many.
Progress = Callable[[int], None]

METRICS_COLUMNS = (
    "env_step",
    "grad_steps",
    "episodes",
    "epsilon",
    "train_return_mean",
    "eval_return_mean",
    "eval_return_std",
    *METRIC_NAMES,
)


class RunLog:
    """Where a run's metrics rows go: metrics.csv (a row a write), the run's history (a row is
    kept once metrics.csv took it: a row the disk refused is no row the run kept), TensorBoard,
    the bar."""

    def __init__(
        self,
        run_dir: Path,
        loop: LoopState,
        total: int,
        progress: bool | Progress,
        log_tensorboard: bool,
    ) -> None:
        import tensorflow as tf

        # TensorBoard's writer first: if tb/ cannot be written, metrics.csv is left as it was.
        self._tb_dir = run_dir / "tb"
        self._tb = None
        if log_tensorboard:
            # Made here, as files open() makes are: TensorFlow makes a folder 0755 whatever the
            # umask, so a group sharing runs (umask 002) could not delete one.
            with contextlib.suppress(FileExistsError):  # a file there: TF's writer names it
                self._tb_dir.mkdir()
            self._tb = _tensorboard(self._tb_dir, tf.summary.create_file_writer, str(self._tb_dir))
        # Rows after the checkpoint (if any) are recomputed: metrics.csv restarts from its rows.
        atomic_write_text(
            run_dir / "metrics.csv", metrics_csv_rows(loop.columns, loop.history, header=True)
        )
        # Unbuffered, a row a write: a row the disk cannot take whole is cut back off the file
        # (write), never left half there, as a buffered file would leave it (a full disk).
        self._file = open(run_dir / "metrics.csv", "ab", buffering=0)
        self._loop = loop
        self._row = io.StringIO(newline="")
        self._csv = csv.DictWriter(self._row, fieldnames=loop.columns)
        self._report = progress if callable(progress) else None
        shown = self._report is None and progress
        self._bar = progress_bar(total, initial=loop.env_step) if shown else None
        # A vector env's last loop step may pass the total: neither the bar nor a study's count
        # of its runs' steps goes past it.
        self._total = total
        self._shown = min(loop.env_step, total)

    def write(self, row: dict) -> None:
        self._row.seek(0)
        self._row.truncate()
        self._csv.writerow(row)
        data = memoryview(self._row.getvalue().encode("utf-8"))
        start = self._file.seek(0, io.SEEK_END)
        try:
            while data:
                data = data[self._file.write(data) :]
        except OSError:
            with contextlib.suppress(OSError):
                self._file.truncate(start)  # the rows before, whole
            raise
        self._loop.history.append(row)
        if self._tb is not None:
            _tensorboard(self._tb_dir, _write_tensorboard, self._tb, row)
        if self._bar is not None:
            self._bar.set_postfix(
                ret=f"{row['train_return_mean']:.0f}",
                eps=f"{row['epsilon']:.2f}",
                eval=f"{row['eval_return_mean']:.0f}",
                refresh=False,
            )

    def advance_to(self, step: int, every: int = 0) -> None:
        """Move the bar to ``step`` (or report the steps up to it) if it lags by at least
        ``every`` steps."""
        step = min(step, self._total)
        if step - self._shown < every or step == self._shown:
            return
        if self._bar is not None:
            self._bar.update(step - self._shown)
        if self._report is not None:
            self._report(step - self._shown)
        self._shown = step

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            _tensorboard(self._tb_dir, self._tb.close)
        if self._bar is not None:
            self._bar.close()


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """A metrics.csv as columns (NaN where a row has no value); a CheckpointError naming the
    file and line where a row is cut short or longer than the header, or holds a cell that is
    not a number (float(None)'s TypeError, deep in a study's report, before)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:  # damaged bytes: dqn writes ASCII
        raise CheckpointError(f"{path} cannot be read: {exc.reason} at byte {exc.start}") from None
    if text and not text.endswith("\n"):  # dqn writes whole lines: a header cut there too
        raise CheckpointError(f"{path} is cut short: its last line has no end")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
        columns = reader.fieldnames or []
    except csv.Error as exc:  # a NUL byte, a quote left open
        raise CheckpointError(f"{path} cannot be read: {exc} (not written by dqn)") from None
    values = []  # each cell read once: checked and converted in one pass
    for line, row in enumerate(rows, 2):
        try:
            if None in row or None in row.values():  # csv's marks of too many or too few cells
                raise ValueError("it does not have the header's cells")
            values.append([float(row[k]) if row[k] != "" else math.nan for k in columns])
        except ValueError as exc:
            raise CheckpointError(
                f"{path}, line {line}, cannot be read: {exc} (cut short, or not written by dqn)"
            ) from None
    return {k: np.array([v[i] for v in values]) for i, k in enumerate(columns)}


class MetricWindow:
    """Aggregates update metrics between two metrics.csv rows (mean, or max for max-metrics):
    a row's mean is over its gradient steps."""

    def __init__(self, rows: list[np.ndarray] | None = None) -> None:
        self.rows: list[np.ndarray] = list(rows or [])  # a checkpoint saves the open window

    def add(self, values: np.ndarray, bursts: int = 1) -> None:
        """``values``: the means over one call's ``bursts`` bursts, of the same number of steps
        each. Kept once per burst, so that a call of two bursts (several envs past two multiples
        of train_every_env_steps in one step) weighs twice a call of one in the row's mean."""
        self.rows.extend([values] * bursts)

    def pop(self) -> np.ndarray | None:
        if not self.rows:
            return None
        rows, self.rows = np.stack(self.rows), []
        return np.where(IS_MAX_METRIC, rows.max(axis=0), rows.mean(axis=0))


def metrics_row(
    step: int,
    grad_steps: int,
    episode_returns: list[float],
    epsilon: float,
    eval_mean: float,
    eval_std: float,
    metrics: np.ndarray | None,
) -> dict:
    """One metrics.csv row (without the probe diagnostics)."""
    recent = episode_returns[-10:]
    row = {
        "env_step": step,
        "grad_steps": grad_steps,
        "episodes": len(episode_returns),
        "epsilon": round(epsilon, 6),
        "train_return_mean": float(np.mean(recent)) if recent else float("nan"),
        "eval_return_mean": eval_mean,
        "eval_return_std": eval_std,
    }
    for i, name in enumerate(METRIC_NAMES):
        row[name] = float(metrics[i]) if metrics is not None else float("nan")
    return row


def write_summary(
    run_dir: Path,
    config,
    loop: LoopState,
    step: int,
    threshold: float | None,
    stop_signal: int | None,
    diverged: str | None,
    extra: dict | None = None,
    *,
    stopped_by_on_eval: bool = False,
) -> dict:
    """summary.json. A run stopped by a signal or by ``train``'s ``on_eval`` is interrupted:
    it ends at a resumable checkpoint, and ``resume`` takes it on to its last step."""
    summary = {
        "env_id": config.env_id,
        "loss": config.loss,
        "seed": config.seed,
        "env_steps": step,
        "interrupted": stop_signal is not None or stopped_by_on_eval,
        "stop_signal": stop_signal,
        "stopped_by_on_eval": stopped_by_on_eval,
        "diverged": diverged,
        "solve_return": threshold,
        "first_solve_env_step": loop.first_solve,
        "final_eval_mean": loop.eval_mean,
        "final_eval_std": loop.eval_std,
        "train_seconds": round(loop.train_seconds, 3),
        "eval_seconds": round(loop.eval_seconds, 3),
        **(extra or {}),
    }
    atomic_write_text(run_dir / "summary.json", strict_json(summary, indent=1))
    return summary


class Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked by the loop, so a checkpoint can be saved.

    In a study's worker process (``share_stop``) the flag is the study's shared stop event
    instead: the study sets it when it is interrupted, and the worker's own signals set it too.
    """

    # A signal this soon after the first is the same request delivered twice, not a second
    # Ctrl-C: GNU ``timeout`` sends its signal to the process and then to its process group, so
    # the study's process gets it twice, milliseconds apart (measured: 4.7 ms), and took the
    # second for "stop now", killing its workers before their checkpoints.
    REPEAT_SECONDS = 0.25

    def __init__(self) -> None:
        self._signum: int | None = None
        self._first = 0.0  # time.monotonic() of the first signal
        self._previous: dict[int, object] = {}

    @property
    def signum(self) -> int | None:
        if self._signum is None and _SHARED_STOP is not None and _SHARED_STOP.is_set():
            self._signum = signal.SIGINT
        return self._signum

    def __enter__(self) -> Interrupt:
        if _SHARED_STOP is not None:  # the worker's handlers already set the shared flag
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self._signum is None:
            self._signum, self._first = signum, time.monotonic()
        elif time.monotonic() - self._first >= self.REPEAT_SECONDS:  # second Ctrl-C: stop now
            raise SignalInterrupt(signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


_SHARED_STOP = None  # in a study's worker process: the study's stop event (``share_stop``)


def share_stop(event) -> None:
    """Make ``event`` (a multiprocessing Event) this worker process's stop flag: SIGINT and
    SIGTERM set it, at any time (a Ctrl-C reaches every process of the terminal's group, and
    one that arrives before a run's loop starts must still stop it), and every run's loop
    stops, with a checkpoint, once it is set by any process."""
    global _SHARED_STOP
    _SHARED_STOP = event
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: event.set())


def stop_requested() -> bool:
    """True in a study's worker process whose study has been interrupted."""
    return _SHARED_STOP is not None and _SHARED_STOP.is_set()


def _tensorboard(tb_dir: Path, fn, *args):
    """``fn(*args)``, with TensorFlow's file errors as OSError: they are not one (a tb/ folder
    that cannot be written, a full disk), and the command line reports an OSError in one line."""
    import tensorflow as tf

    try:
        return fn(*args)
    except tf.errors.OpError as exc:
        # "{{function_node ...}} Not a directory [Op:CreateSummaryFileWriter] name: ...": the
        # middle is the message.
        raise OSError(errno.EIO, op_error_reason(exc), str(tb_dir)) from None


def _write_tensorboard(writer, row: dict) -> None:
    import tensorflow as tf

    with writer.as_default(step=int(row["env_step"])):
        for key, value in row.items():
            # TensorBoard keeps float32: a NaN, an inf or a return beyond float32's range (an
            # episode's float64 sum of large rewards) is in metrics.csv only.
            if key != "env_step" and isinstance(value, float) and abs(value) <= F32_MAX:
                tf.summary.scalar(key, value)
