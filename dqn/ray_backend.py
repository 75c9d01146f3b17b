"""The Ray backend of ``dqn-compare``: one Ray task per run or per population chunk, on a
local Ray or a cluster.

Ray is an optional extra (``pip install -e ".[ray]"``), imported inside the functions only, so
``dqn.compare`` imports without it. Each task calls the worker function that
``dqn.study_runs`` passes in, in one of Ray's worker processes (started fresh, not forked:
TensorFlow is imported inside the task), and writes its run folder and ``result.json``
itself. So on a cluster the output folder must be on a filesystem every node sees at the same
path, and dqn must be installed on every node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import warnings
from collections.abc import Callable, Iterator, Sequence

from dqn.errors import DQNError, first_line

# The extra's own pin, so that the line works from any folder (an editable install's
# `pip install -e ".[ray]"` works only from dqn's checkout).
RAY_MISSING = (
    '--backend ray needs Ray: pip install "ray==2.60.0" (dqn\'s "ray" extra; from dqn\'s '
    'checkout, pip install -e ".[ray]")'
)


def require_ray():
    """The ``ray`` module, or a one-line DQNError naming the fix."""
    try:
        import ray
    except ImportError:
        raise DQNError(RAY_MISSING) from None
    return ray


def check_reachable(address: str, timeout_s: float = 5.0, source: str = "--address") -> None:
    """A one-line DQNError unless something listens at ``address`` (HOST:PORT, optionally
    ``ray://HOST:PORT``): ``ray.init`` itself retries an unreachable address for minutes.
    ``source`` names where the address came from (--address, or the RAY_ADDRESS variable)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        if address == "auto":
            return  # Ray finds the cluster this machine belongs to
        raise DQNError(f"{source} {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        # (From RAY_ADDRESS, a user who gave no --address did not know where it came from.)
        cure = (
            "; unset RAY_ADDRESS for a Ray of dqn's own on this machine, or give --address"
            if source == "RAY_ADDRESS"
            else ""
        )
        raise DQNError(
            f"cannot reach a Ray cluster at {address} (from {source}): {exc.strerror or exc}{cure}"
        ) from None


def run_ray(
    worker: Callable[..., object],
    jobs: Sequence[tuple],
    workers: int,
    address: str | None = None,
    on_crash: Callable[[str], object] | None = None,
    on_stop: Callable[[int | None, object], object] | None = None,
) -> Iterator[tuple[str, object]]:
    """Run ``worker(*args)`` per job ``(name, *args)`` as a Ray task of one CPU; yield
    (name, result) as each finishes. A job is one run, or one population chunk. A task whose
    worker or node died (after Ray's retries) yields ``on_crash(why)`` (default: Ray's error is
    raised). With ``on_stop``, SIGINT or SIGTERM cancels every unfinished task (a running one
    is killed: what it wrote is its checkpoints, each written atomically) and each yields
    ``on_stop(signal, None)``, as ``dqn.local_backend.run_local`` yields for a cancelled task.

    Uses the Ray this process is already connected to, if any; else connects to ``address``, or
    without one starts a local Ray of ``workers`` CPUs, and shuts it down at the end.
    """
    from dqn.run_log import Interrupt

    ray = require_ray()
    started = not ray.is_initialized()
    # What ray.init leaves in this process after ray.shutdown, put back then (a program that
    # ran a study from Python quit on SIGTERM by SystemExit, and its breakpoint() went to Ray).
    before = None
    if started:
        options = {"log_to_driver": False, "include_dashboard": False, "configure_logging": False}
        local = address is None and not os.environ.get("RAY_ADDRESS")
        if local:
            # A new local Ray of its own ("local": without it ray.init joins a cluster that
            # `ray start` left running on this machine, and refused num_cpus there with a
            # ValueError traceback); a cluster has its own CPUs.
            address, options["num_cpus"] = "local", workers
        state = _process_state()
        try:
            with _ray_warnings_muted(), _workers_at_our_priority(local):
                ray.init(address=address, **options)
        except BaseException as exc:
            _restore_process_state(_changed_by_ray(state))
            if not isinstance(exc, ConnectionError):
                raise
            # An OSError, which the command read as "cannot write".
            where = address or os.environ.get("RAY_ADDRESS")
            raise DQNError(
                f"cannot connect to the Ray cluster at {where}: {first_line(exc)}"
            ) from None
        before = _changed_by_ray(state)  # what ray.init changed; the rest is the process's
    try:
        # Application errors are not retried; a task whose worker or node died is (Ray's
        # default), and the worker resumes that run from its newest good checkpoint, or starts
        # it again where it has none (dqn.study_runs).
        # A command's one-line warnings hold in its tasks too, as in the local backend's
        # workers: said there once, and printed here once for the whole study (Ray's own
        # forwarding of a worker's stderr is off, and printed the two-line form, source too).
        say = getattr(warnings.showwarning, "say", None)
        prog = getattr(warnings.showwarning, "prog", None)
        task = ray.remote(num_cpus=1)(_saying(worker, prog) if say is not None else worker)
        pending = {task.remote(*args): name for name, *args in jobs}
        with Interrupt() if on_stop is not None else contextlib.nullcontext() as signals:
            while pending:
                if signals is not None and signals.signum is not None:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    for name in pending.values():
                        yield name, on_stop(signals.signum, None)
                    return
                finished, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in finished:
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        if on_crash is None:
                            raise
                        result = on_crash(first_line(exc))
                    else:
                        if say is not None:
                            result, said = result
                            for category, text in said:
                                say(category, text)
                    yield pending.pop(ref), result
    finally:
        if started:
            ray.shutdown()
            _restore_process_state(before)


def _saying(worker: Callable[..., object], prog: str) -> Callable[..., tuple]:
    """``worker`` as a task that returns ``(result, said)``: its warnings, each once, as
    ``(category name, text)`` (``dqn.terminal.warning_printer``'s forward), for the caller's
    printer to say."""

    def task(*args) -> tuple:
        from dqn.terminal import warning_printer

        said: list[tuple[str, str]] = []
        shown = warnings.showwarning
        warnings.showwarning = warning_printer(prog, said.append)
        try:
            return worker(*args), said
        finally:
            warnings.showwarning = shown

    return task


@contextlib.contextmanager
def _workers_at_our_priority(local: bool) -> Iterator[None]:
    """While a local Ray starts: its workers at this process's priority, as the local backend's.

    Ray raises its workers' niceness by 15 (``RAY_worker_niceness``, an increment); here the
    runs are the command's whole work, and at +15 anything else on the machine takes the cores
    from them (next to two busy processes, a study of 4 tiny runs was more than 10x slower at
    +15 than at +0). A value the user set is kept, and a cluster's workers are the cluster's
    business."""
    name = "RAY_worker_niceness"
    if not local or name in os.environ:
        yield
        return
    os.environ[name] = "0"
    try:
        yield
    finally:
        del os.environ[name]


# ray.init sets a SIGTERM handler of its own (it raises SystemExit) and PYTHONBREAKPOINT (its
# debugger), RAY_AUTH_MODE and RAY_USAGE_STATS_ENABLED, and ray.shutdown undoes none of them.
_RAY_SIGNALS = ("SIGTERM", "SIGINT")


def _process_state() -> tuple[dict, dict]:
    """This process's environment and the handlers of the signals Ray takes."""
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in _RAY_SIGNALS}
    return dict(os.environ), handlers


def _changed_by_ray(state: tuple[dict, dict]) -> tuple[dict, dict]:
    """``state`` with only the environment variables that ray.init changed since it was taken:
    what the process sets itself while the study runs is its own."""
    environ, handlers = state
    changed = set(environ) ^ set(os.environ)
    changed |= {name for name in environ if environ[name] != os.environ.get(name, environ[name])}
    return {name: environ.get(name) for name in changed}, handlers


def _restore_process_state(state: tuple[dict, dict] | None) -> None:
    """Put back what ``_process_state`` took (an environment variable None: absent before)."""
    if state is None:
        return
    environ, handlers = state
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        elif os.environ.get(name) != value:
            os.environ[name] = value
    for name, handler in handlers.items():
        number = getattr(signal, name)
        if handler is not None and signal.getsignal(number) is not handler:
            with contextlib.suppress(ValueError):  # not the main thread: Ray set none there
                signal.signal(number, handler)


@contextlib.contextmanager
def _ray_warnings_muted() -> Iterator[None]:
    """Ray's start-up notices (token authentication, resources) are not the comparison's."""
    logger = logging.getLogger("ray")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
