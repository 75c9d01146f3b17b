"""User-facing errors. The CLI prints any of these as one line and exits 2 (bad input), 3
(divergence), 1 (a study's worker crashed) or 128 + the signal (a study interrupted)."""

import contextlib
import re
import reprlib
import sys
from collections.abc import Iterator
from pathlib import Path


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name if it has none): a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 3, 200, 200, 200
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = _BRIEF.maxset = 12


def brief(value: object) -> str:
    """``repr(value)`` for a one-line error, cut short (``...``) where it is long or deep: a 1 KB
    YAML file of nested aliases is a value whose whole repr is hundreds of MB."""
    text = _one_line(_BRIEF.repr(value))
    return text if len(text) <= 300 else text[:297] + "..."


def shown(value: object, width: int) -> str:
    """``repr(value)`` on one line, cut to ``width`` characters: numpy writes an array of
    several rows (a 2-D array, a long row) over several lines."""
    return _one_line(repr(value))[:width]


def _one_line(text: str) -> str:
    """``text`` with each line break and the indent around it as one space (a repr holds a
    break only where it wraps: a string's own are written as \\n)."""
    return re.sub(r"\s*\n\s*", " ", text)


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, which Python 3.10 lacks: there the note is kept in
    ``__notes__`` all the same (3.11's traceback prints it; 3.10's does not)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


def few(names: list[str], most: int = 3) -> str:
    """A few names for a one-line message: "a, b, c and 4 more"."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def raised_by_env(exc: BaseException) -> bool:
    """True if ``exc`` came out of an env's own code: a frame it passed through is a method of a
    gymnasium env, wrapper or vector env (its ``__init__`` too). An OSError from there is the
    env's (a level file its reset reads, a simulator it connects to), not a file of the run's:
    the commands let it through with its traceback, as any other error of the env's, instead of
    naming it as a folder they could not write or read."""
    gym = sys.modules.get("gymnasium")
    if gym is None or isinstance(exc, DQNError):
        return False
    kinds = (gym.Env, gym.vector.VectorEnv)
    tb = exc.__traceback__
    while tb is not None:
        if isinstance(tb.tb_frame.f_locals.get("self"), kinds):
            return True
        tb = tb.tb_next
    return False


class DQNError(Exception):
    """Base of the errors caused by what the user asked for (not by a bug in dqn)."""


class ConfigError(DQNError, ValueError):
    """A config key, value, file or override is invalid."""


class UnsupportedSpaceError(DQNError, ValueError):
    """The environment's observation or action space is not one DQN here handles."""


class InputError(DQNError, ValueError):
    """An argument of the agent's Python API (an observation, a batch, epsilon, a network_fn's
    model) has the wrong shape, type or range."""


class OutputError(DQNError, OSError):
    """A folder asked for (a run's, a saved agent's, an exported policy's) cannot be written:
    its path and the reason, in one line; ``reason`` alone for a message that names the path
    otherwise. Still an OSError, for code that catches those."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)  # one argument: what a pickle of it (a worker's) rebuilds
        self.reason = message if reason is None else reason


def os_problem(exc: OSError) -> str:
    """The reason ("No space left on device"), with the file where the error names one (a full
    disk's, from numpy's zip writer closing its file, names none). A failed rename names the
    file it was to replace, not the temporary one beside it that the user never saw."""
    name = exc.filename2 or exc.filename
    return f"{exc.strerror or exc}" + (f": {name}" if name else "")


def op_error_reason(exc) -> str:
    """TensorFlow's words for a file error (a ``tf.errors.OpError``), without its op's name and
    the file it was writing: "{{function_node ...}} out/.model.x1y2.tmp/variables/...; No space
    left on device [Op:SaveV2]" is "No space left on device". The caller names the path the
    user gave, not TensorFlow's temporary file beside it."""
    text = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", exc.message, flags=re.S).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.rsplit("; ", 1)[-1].strip()


@contextlib.contextmanager
def writing(what: str, path) -> Iterator[None]:
    """Inside, an OSError (a path under a file, a read-only or full disk) is raised as an
    OutputError "cannot write {what} {path}: {reason}"; dqn's own errors pass unchanged. The
    reason names a file on the way to ``path`` where there is one (the system's "File exists"
    or "Not a directory" would not say which), else the system's words, without the file name
    (``path`` names it; the system's may be a temporary name beside it)."""
    try:
        yield
    except DQNError:
        raise
    except OSError as exc:
        on_the_way = [p for p in Path(path).absolute().parents if _is_file(p)]
        why = f"{on_the_way[-1]} is a file" if on_the_way else (exc.strerror or str(exc))
        raise OutputError(f"cannot write {what} {path}: {why}", why) from None


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False also where the question cannot be asked (a name too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


class CheckpointError(DQNError):
    """A checkpoint or run folder is missing, incomplete or corrupt."""


class FolderBusyError(DQNError):
    """Another process is writing the run, population or study folder (a second dqn-compare
    into the same --out, a resume of a run that is still training): two writers of the same
    checkpoints and metrics.csv would corrupt them."""


class DivergenceError(DQNError):
    """Training diverged (NaN/inf or |Q| over the bound); the last good checkpoint is intact."""


class NonFiniteEnvError(DivergenceError):
    """The env returned a NaN or inf observation or reward. The run stops as a divergence does
    (recorded as stopped, its last good checkpoint intact), but the message names the env, not
    the learner: a NaN input would otherwise surface updates later as a 'diverged' loss."""


class WorkerError(DQNError):
    """A study's run crashed in its worker process: not bad input (validation caught none), so
    the command line exits 1. The finished runs are kept; the traceback is in the task's
    error.txt."""


class StudyInterrupted(DQNError):
    """A study stopped by SIGINT or SIGTERM: its finished runs are kept, and the same command
    trains the others, each interrupted one from its newest checkpoint. The command line exits
    with 128 + the signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class SignalInterrupt(KeyboardInterrupt):
    """A second SIGINT or SIGTERM, which stops a command at once. A KeyboardInterrupt, so that
    whatever handles Ctrl-C handles it; it carries the signal, and the command line exits with
    128 + ``signum`` (130 for SIGINT, 143 for SIGTERM), as for a first one."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped ``train``, ``resume``, ``train_population`` or
    ``resume_population`` after the run, or every running member, saved a resumable checkpoint.
    A KeyboardInterrupt, so that a script, or its loop over seeds, ends on it as on any Ctrl-C
    rather than going on to the next run; ``result`` is what the call would have returned
    (``interrupted``, ``stop_signal`` and the run folders), for a caller that catches it."""

    def __init__(self, message: str, signum: int, result) -> None:
        super().__init__(message)
        self.signum = signum
        self.result = result


def raise_if_signalled(result, signum: int | None, step: int, resume_call: str):
    """``result``, or TrainingInterrupted carrying it if a signal (``signum``) stopped the call
    at env step ``step``; ``resume_call`` names the call that continues from there."""
    if signum is None:
        return result
    import signal

    name = signal.Signals(signum).name
    raise TrainingInterrupted(
        f"{name} stopped training at env step {step}, after a resumable checkpoint: "
        f"{resume_call} continues it",
        signum,
        result,
    )


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (corrupt or incomplete) in favour of an older good one."""


class ThreadsWarning(UserWarning):
    """TensorFlow was running before dqn could set its thread pools (they cannot change then)."""
