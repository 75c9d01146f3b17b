"""The local backend of ``dqn-compare``: tasks in worker processes of this machine.

Like ``dqn.ray_backend`` it runs any ``worker(*args)`` and knows nothing of what a task is
(``dqn.study_runs`` does). What it owns is the processes: started with ``spawn`` (TensorFlow is
not fork-safe), one task at a time each, a queue on which tasks report progress, and the
study's stop. SIGINT or SIGTERM, to the study's process alone (``kill PID``) or to the whole
process group (Ctrl-C in a terminal), sets one stop event that every worker shares
(``dqn.run_log.share_stop``): each running task's loop saves a checkpoint and returns, and the
tasks not started are cancelled. A second signal kills the workers at once, which their
atomically written checkpoints make safe.
"""

from __future__ import annotations

import contextlib
import signal
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

_PROGRESS_QUEUE = None  # in a worker process: where a task reports its progress


def progress_queue():
    """In a local worker process, the queue on which a task puts ``(its name, env steps)``;
    None elsewhere (a Ray worker, the study's own process)."""
    return _PROGRESS_QUEUE


def run_local(
    worker: Callable[..., object],
    jobs: Sequence[tuple],
    workers: int,
    on_steps: Callable[[str, int], None] | None = None,
    on_crash: Callable[[str], object] | None = None,
    on_stop: Callable[[int | None, object], object] | None = None,
) -> Iterator[tuple[str, object]]:
    """Run ``worker(*args)`` per job ``(name, *args)`` in ``workers`` local processes; yield
    (name, result) as each finishes. What tasks put on ``progress_queue()`` reaches
    ``on_steps``. A task whose process died yields ``on_crash(why)`` (default: the error is
    raised). Once the study is stopped, each task that ends yields ``on_stop(signal, its result)``
    instead: its result is None if it was cancelled before it started, and the signal None if
    only a worker was signalled."""
    import multiprocessing as mp
    import queue as queues

    from dqn.run_log import Interrupt

    # The queue and the stop event reach the workers when they start (neither can be sent with
    # a task).
    context = mp.get_context("spawn")
    steps = context.Queue() if on_steps is not None else None
    stop = context.Event()
    # A command's one-line warnings (dqn.terminal.warning_printer) hold in its workers too (a
    # fallback to an older checkpoint is said there, where a resume finds the damage), and come
    # here to be printed, each once for the whole study.
    say = getattr(warnings.showwarning, "say", None)
    prog = getattr(warnings.showwarning, "prog", None)
    said = context.Queue() if say is not None else None
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(steps, stop, prog, said)
    )

    def drain(*queue_and_reader) -> None:
        for queue, to in queue_and_reader:
            with contextlib.suppress(queues.Empty):
                while queue is not None:  # None: nobody reads this kind
                    to(*queue.get_nowait())

    try:
        with Interrupt() as signals:
            with _signals_held():  # the workers start on the first submit
                pending = {pool.submit(_run_task, worker, *args): name for name, *args in jobs}
            while pending:
                if signals.signum is not None:
                    stop.set()  # the workers' loops stop at their next step
                if stop.is_set():  # by this process, or by a worker's own signal
                    for fut in pending:
                        fut.cancel()  # the tasks not started (a running one cannot be)
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                drain((steps, on_steps), (said, say))
                for fut in finished:
                    # A worker a signal to the study killed as it started broke the pool: that
                    # is the stop, not a crash. A worker killed alone (the out-of-memory killer)
                    # is a crash, though the stop is set: the pool then SIGTERMs the others,
                    # whose handlers set it, and the study said "interrupted", exit 130.
                    result = _result(fut, on_crash, stopping=signals.signum is not None)
                    if stop.is_set() and on_stop is not None:
                        result = on_stop(signals.signum, result)
                    yield pending.pop(fut), result
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()  # a second signal, or the caller gave up: stop now, not at the end
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    drain((said, say))  # what a worker said as its last task ended


# The signals that stop a study: held (blocked) in this process while it starts the workers,
# which inherit the mask through their exec and release it once their handlers are set.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while the workers are started: a worker starts
    with them blocked, so a Ctrl-C to the group while it imports waits for its handlers
    (``_start_worker``) instead of killing it half-started, which reported its runs as crashed.
    Here they wait too, and reach the study's handlers when released: none is lost."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _result(fut, on_crash, stopping: bool = False) -> object:
    """A finished future's result; None if it was cancelled or a signal ended it early (a
    worker that died once the study was ``stopping``)."""
    if fut.cancelled():
        return None
    try:
        return fut.result()
    except BrokenProcessPool:  # killed (out of memory, a signal): no traceback
        if stopping:
            return None
        if on_crash is None:
            raise
        return on_crash(
            "its worker process died (killed, out of memory, or failing as it started: its own "
            "lines above say why), or another worker did and the pool stopped this one with it"
        )
    except KeyboardInterrupt:  # a worker's second signal, before its loop had started
        return None


def _start_worker(queue, stop, prog: str | None = None, said=None) -> None:
    """A worker process's set-up: the progress queue, the study's stop event as its loops'
    stop flag (``dqn.run_log.share_stop``), a watch on the study's process, and the command's
    one-line warnings (``prog``: the command's name; None from Python, whose own stand), each
    put on ``said`` for the study's process to print."""
    import os
    import threading

    from dqn.run_log import share_stop
    from dqn.terminal import outlive_readers, warning_printer

    if prog is not None:
        warnings.showwarning = warning_printer(prog, said.put if said is not None else None)

    global _PROGRESS_QUEUE, _IDLE
    outlive_readers()  # the study's stderr: a `| tee` the same Ctrl-C stopped has no reader
    _PROGRESS_QUEUE = queue
    share_stop(stop)
    # Started with SIGINT and SIGTERM blocked (``_signals_held``): one that came while this
    # process started is delivered now, to the study's handlers just set.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _IDLE = threading.Event()
    _IDLE.set()
    threading.Thread(target=_watch_study, args=(os.getppid(), stop), daemon=True).start()


_IDLE = None  # in a worker process: a threading.Event set while no task runs


def _run_task(worker, *args):
    """``worker(*args)``, with the worker marked busy while it runs (see ``_watch_study``)."""
    _IDLE.clear()
    try:
        return worker(*args)
    finally:
        _IDLE.set()


def _watch_study(study_pid: int, stop) -> None:
    """End this worker once the study's process is gone (SIGKILL, the out-of-memory killer).

    Nobody reads its results then, and a worker left behind waited forever, holding its
    memory and, for a run still training, its folders. It stops as a signal would stop it: the
    running task's loop saves a checkpoint and returns (the same command resumes it), and the
    process leaves.
    """
    import os
    import time

    while os.getppid() == study_pid:
        time.sleep(1.0)
    stop.set()
    # A task that never reaches its next step (an env that hangs) is not waited for forever:
    # such a worker stayed, holding its run's folder lock, and a rerun said the runs were busy.
    _IDLE.wait(ORPHAN_GRACE_SECONDS)
    os._exit(1)


# How long a worker whose study is gone waits for its task to checkpoint and return.
ORPHAN_GRACE_SECONDS = 120.0


__all__ = ["progress_queue", "run_local"]
