"""The commands' output outlives its reader.

``dqn-train 2>&1 | tee train.log`` is how runs get logged, and Ctrl-C reaches ``tee`` too: it
exits at once, and the command's next write (the progress bar closing, the summary) raised
BrokenPipeError mid-shutdown. The run's checkpoint was saved, but its summary.json was not,
the command exited 1 instead of 130, and ``| head`` ended a finished run with a traceback.
Inside ``command`` a write to a pipe whose reader is gone sends that stream to
/dev/null instead: the command finishes what it was doing and exits with its own code.

The progress bars draw for their reader too: in place on a terminal, as whole lines in a log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def warning_printer(prog: str, forward: Callable[[tuple[str, str]], object] | None = None):
    """A ``warnings.showwarning`` that prints ``prog: warning: message``: one line, no source
    excerpt, and each warning once (a command makes one printer). Its ``prog`` attribute lets a
    command's worker processes install one too, with ``forward``: a worker's printer passes each
    of its warnings, once, as ``(category name, text)`` to ``forward`` (a queue to the study's
    process), and there the command's printer's ``say`` prints it, once for the whole command:
    every worker of a study warned that CartPole-v0 is out of date, after the study had."""
    shown: set[tuple[str, str]] = set()

    def say(category: str, text: str) -> None:
        # Gymnasium colours its own warnings ("\x1b[33mWARN: ...\x1b[0m"), which a log file or
        # a pipe shows as raw escape codes beside our plain prefix.
        text = ANSI_ESCAPE.sub("", text)
        # Once: the env check, the training env and the evaluation env each made CartPole-v0,
        # and each warned that it is out of date.
        if (category, text) in shown:
            return
        shown.add((category, text))
        if forward is not None:
            forward((category, text))
            return
        # On a terminal, from the line's start, cleared: a progress bar drawn in place had the
        # warning glued to its end.
        start = "\r\x1b[K" if _is_terminal(sys.stderr) else ""
        print(f"{start}{prog}: warning: {text}", file=sys.stderr)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        say(category.__name__, str(message))

    show.prog = prog
    show.say = say
    return show


class _Survivor:
    """A text stream that drops its output, rather than raise, once its reader is gone, or
    once it cannot be written (a full disk, ``> /dev/full``): then ``failed`` holds the error,
    which the command names when it has finished its work (a traceback had come after the run
    was saved, or an error that blamed the run folder it was reading)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._drop(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._drop(exc)

    def _drop(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError) and self.failed is None:
            self.failed = exc
        self._to_devnull()

    def _to_devnull(self) -> None:
        # The stream's own descriptor now leads nowhere: its buffered text, flushed again now
        # or at the interpreter's exit, goes there too, without a second error.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str):  # fileno, isatty, encoding...: the stream's own
        return getattr(self._stream, name)


def outlive_readers() -> tuple[TextIO, TextIO]:
    """From now on in this process, stdout and stderr survive their readers (a study's worker
    keeps this for its life: its warnings share the study's stderr). Returns the streams it
    replaced."""
    _closed_streams_to_devnull()  # a process started without them has None there
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, _Survivor):
        sys.stdout, sys.stderr = _Survivor(sys.stdout), _Survivor(sys.stderr)
    return saved


def command(main: Callable[..., int]) -> Callable[..., int]:
    """A command's ``main``, its output outliving its readers while it runs."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        saved = outlive_readers()  # a closed stdout or stderr given /dev/null first
        try:
            try:
                code = main(*args, **kwargs)
            except SystemExit as exc:  # argparse's --help, --version, --keys: printed, exit 0
                if exc.code not in (0, None) or not _stdout_failed():
                    raise
                return _say_stdout_failed(main, 0)
            return _say_stdout_failed(main, code) if _stdout_failed() else code
        except KeyboardInterrupt as exc:
            # One the command's own handlers did not take: Ctrl-C while it parses its arguments
            # and imports what it parses with (a fraction of a second after its start), when
            # nothing is written yet. One line, as later, not a traceback through numpy's import.
            print(f"{_prog(main)}: error: interrupted", file=sys.stderr)
            return 128 + getattr(exc, "signum", signal.SIGINT)
        finally:
            _ignore_signals_if_command(main)
            # A pipe's stdout is block-buffered (unless PYTHONUNBUFFERED is set): what is still
            # in its buffer is flushed here, through the survivor, not by the interpreter at
            # exit, where a gone reader gave "Exception ignored ... BrokenPipeError", exit 120.
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            sys.stdout, sys.stderr = saved

    return run


def _stdout_failed() -> bool:
    """Whether stdout could not be written (its survivor noted the error), once what is still
    in its buffer has been flushed."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # through the survivor: a failure is noted, not raised
    return getattr(sys.stdout, "failed", None) is not None


def _say_stdout_failed(main: Callable, code: int) -> int:
    """One line naming stdout's error, and ``code`` or 2: all the command's work is done by now
    (the run saved, the files written), and only its report was lost."""
    failed = sys.stdout.failed
    why = f"cannot write to standard output: {failed.strerror or failed}"
    print(f"{_prog(main)}: error: {why}", file=sys.stderr)
    return code or 2


@contextlib.contextmanager
def noted_signals(note: Callable[[int], object]) -> Iterator[None]:
    """Inside, a SIGINT or SIGTERM calls ``note(signum)`` instead of raising, and the handlers
    come back after. Raised inside TensorFlow's calls a KeyboardInterrupt lands in an object's
    ``__del__`` (where Python drops it) or in its C++ bindings (a pybind11 error); raised just
    after a rename, it cannot tell whether the rename happened. (Blocking would not do: another
    thread, TensorFlow's, takes a signal this one blocks.) Outside the main thread, where
    handlers cannot be set, nothing is noted."""
    with signal_handlers((signal.SIGINT, signal.SIGTERM), lambda signum, _: note(signum)):
        yield


@contextlib.contextmanager
def signal_handlers(signums: Iterable[int], handler: Callable) -> Iterator[None]:
    """Inside, ``handler`` handles each of ``signums``; the handlers before come back after.
    Outside the main thread, where handlers cannot be set, the signals are left alone."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig in signums}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def _ignore_signals_if_command(main: Callable) -> None:
    """Where the process is this command, its work is done and its exit code decided: a signal
    during the interpreter's shutdown (TensorFlow's teardown takes a moment) replaced that
    code, 130 or 143 after a complete export's success line (`timeout ... dqn-export && ...`).
    From Python (a test, a notebook) the handlers stay as they are.

    While the command's name is looked up (``_prog`` reads the installed entry points, a
    moment) a signal is only noted: one raised then came through importlib.metadata, a
    traceback after the success line. Noted where the handlers stay, it is raised again."""
    noted: list[int] = []
    with noted_signals(noted.append):
        is_command = os.path.basename(sys.argv[0]) == _prog(main)
    if is_command:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(sig, signal.SIG_IGN)
    elif noted:
        signal.raise_signal(noted[0])  # to the caller's handler, as it would have come


def _prog(main: Callable) -> str:
    """The command's name: its console script's (``dqn-export`` for ``dqn.export:main``), else
    the name it was started by."""
    from importlib.metadata import entry_points

    target = f"{main.__module__}:{main.__name__}"
    for script in entry_points(group="console_scripts"):
        if script.value == target:
            return script.name
    return os.path.basename(sys.argv[0]) or "the command"


def _closed_streams_to_devnull() -> None:
    """Give a command started with stdout or stderr closed (``dqn-train >&-``) /dev/null in
    their place. Python makes such a stream None; writes to it raised AttributeError (a finished
    run exited 1 or 120 with a traceback), and the file the command opened next took the free
    descriptor, where a library's messages to descriptor 2 would have gone into it."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            else:  # os.open's descriptor is closed in a child: a study's workers started
                # with no stderr (their stream None, every run failed), and a pool's pipe took
                # the free descriptor 1 or 2 there. dup2's copy is inherited; this one is now.
                os.set_inheritable(fd, True)
        setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115 (the process's own)


# How often a progress bar writes a line where stderr is not a terminal.
LOG_EVERY_SECONDS = 30.0


class _Lines:
    """tqdm's redraws as whole lines. tqdm redraws its bar in place, '\\r' + text + padding;
    in a log file (``dqn-train > train.log 2>&1``, a batch job, CI) every redraw stayed in the
    file, all on one line that grew for the whole run (a copy of the bar up to every 0.5 s)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip()
        if line:
            self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


# tqdm's own format without its "<{remaining}" estimate.
STOPPED_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"


def progress_bar(
    total: int, *, initial: int = 0, desc: str | None = None, unit_scale: bool = False
):
    """A tqdm bar over env steps on stderr: redrawn in place at most every 0.5 s on a
    terminal; elsewhere a line at the start, at most one every ``LOG_EVERY_SECONDS`` and one at
    the end."""
    from tqdm import tqdm

    stream = sys.stderr
    in_log = not _is_terminal(stream)

    class Bar(tqdm):
        # In a log, no monitor thread: its redraw of a bar that had not drawn for maxinterval,
        # then the next update's line, put two lines in one second of a study's log.
        monitor_interval = 0 if in_log else tqdm.monitor_interval

        def update(self, n=1):
            # A vector run's last loop step can pass total_env_steps (by up to num_envs - 1):
            # past its total, tqdm drops the bar and the percentage from its last line.
            if self.total is not None and self.n + n > self.total:
                self.total = self.n + n
            return super().update(n)

        def close(self):
            if self.total is not None and self.n < self.total and not self.disable:
                # Closed short of its total (a signal, a failure, the divergence guard): its
                # last line keeps no estimate of a time left, since nothing is left to run. A
                # study stopped while its workers started had a rate near 0, and an ETA of hours.
                self.bar_format = STOPPED_BAR
            # In a log, the line close() draws is a copy of the last one where nothing moved
            # since (tqdm's last_print_n: a run whose final evaluation outlasts
            # LOG_EVERY_SECONDS printed its 100% line twice): it is left out.
            elif in_log and self.n == self.last_print_n:
                self.display = lambda *args, **kwargs: True
            return super().close()

    common = dict(total=total, initial=initial, desc=desc, unit="step", unit_scale=unit_scale)
    if not in_log:
        return Bar(**common, file=stream, dynamic_ncols=True, mininterval=0.5)
    # maxinterval too (were a monitor thread running for another bar): it redraws a bar that
    # has not drawn for maxinterval (10 s by default), which wrote lines 11 and 19 s apart.
    every = LOG_EVERY_SECONDS
    return Bar(**common, file=_Lines(stream), ascii=True, mininterval=every, maxinterval=every)


def _is_terminal(stream) -> bool:
    """Whether ``stream`` redraws a '\\r' line in place: a terminal, or a notebook's output (a
    Jupyter kernel's streams, Colab's and VS Code's too, say they are no terminal, yet their
    front ends draw tqdm's text bar in place)."""
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


__all__ = ["LOG_EVERY_SECONDS", "command", "outlive_readers", "progress_bar"]
