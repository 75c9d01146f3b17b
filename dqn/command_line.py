"""What every dqn command does alike at the shell: its parser (a usage error is one line, exit
2), one-line errors and warnings, exit codes, and SIGTERM taken as Ctrl-C. Used by
``dqn.cli``'s commands, ``dqn-export`` and the scripts in ``scripts/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from dqn.errors import ConfigError, SignalInterrupt, first_line
from dqn.terminal import noted_signals, signal_handlers, warning_printer

EXIT_FAILED = 1  # a run crashed: not the user's input
EXIT_USAGE = 2
EXIT_DIVERGED = 3


_GIVEN = "_options_given"  # the namespace's record of the options given, while it is parsed


class _StoreOnce(argparse._StoreAction):
    """argparse's store, refusing an option given twice: the last value won without a word
    (``--loss l2 --loss huber`` trained huber), as a key given twice in --set or YAML may not."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault(_GIVEN, set())
        if option_string is not None:
            if self.dest in given:
                shown = "/".join(self.option_strings)
                parser.error(f"{shown} is given twice: give it once")
            given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the problem and where to look), exit code 2;
    an option that takes one value is refused when given twice; and every command says its
    version (``--version``). A long option must be written whole: argparse's abbreviations read
    dqn-compare's ``--seed 3`` as ``--seeds 3`` and trained three seeds."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        from dqn import __version__

        self.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        parsed.__dict__.pop(_GIVEN, None)
        return parsed, extras

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def folder_arg(text: str) -> Path:
    """A folder argument to write: an empty one (an unset shell variable) is not the current
    folder, which is where Path("") would put a run or a study."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    return home_expanded(text)


def home_expanded(text: str) -> Path:
    """A path argument with a leading ``~`` expanded: the shell leaves it in ``--out=~/x``,
    and a folder named ``~`` made in the working folder is a trap (``rm -rf ~``)."""
    from dqn.config import expand_home

    try:
        return expand_home(text, "the path")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fail(prog: str, exc: BaseException | str, code: int = EXIT_USAGE) -> int:
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return code


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Inside, a warning prints as ``prog: warning: message``: one line, no source excerpt,
    once (a study's workers' warnings too: ``dqn.local_backend`` sends them here to print)."""
    with warnings.catch_warnings():
        warnings.showwarning = warning_printer(prog)
        yield


def interrupted_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the command at once (a plain KeyboardInterrupt: SIGINT)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def _raise_signal(signum, frame):
    raise SignalInterrupt(signum)


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Inside, SIGTERM raises a KeyboardInterrupt (``SignalInterrupt``) as SIGINT does, so a
    study stopped before its runs start (or by a second signal) says so in one line instead of
    dying silently, and exits 143."""
    with signal_handlers([signal.SIGTERM], _raise_signal):
        yield


class HeldSignals:
    """What ``held_signals`` noted: ``signum``, the first SIGINT or SIGTERM, or None."""

    signum: int | None = None

    def note(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum

    def raise_if_noted(self) -> None:
        if self.signum is not None:
            raise SignalInterrupt(self.signum)


@contextlib.contextmanager
def held_signals() -> Iterator[HeldSignals]:
    """Inside, SIGINT and SIGTERM are noted, not raised (``dqn.terminal.noted_signals``): the
    caller decides where one stops it (``raise_if_noted``)."""
    held = HeldSignals()
    with noted_signals(held.note):
        yield held


def quiet_tensorflow(num_threads: int = 1) -> None:
    from dqn.runtime import import_tensorflow_quietly

    import_tensorflow_quietly(num_threads)


def add_import_option(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE``, for an env id or Keras classes a module of the user's registers:
    gymnasium and Keras know only what was registered in this process, which the command is
    not (a run trained from a script that registered them)."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE before the env is made and the network is loaded (repeatable): a "
        "module that registers the run's env with gymnasium.register, or defines the custom "
        "Keras classes of a network_fn's model (@keras.saving.register_keras_serializable()); "
        "installed or on PYTHONPATH",
    )


def import_modules(names: Sequence[str]) -> None:
    """Import each of ``names`` (``--import``); ConfigError naming one that cannot be."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the user's module: whatever it raised, in one line
            where = (
                "; it must be installed or on PYTHONPATH" if isinstance(exc, ImportError) else ""
            )
            raise ConfigError(
                f"--import {name}: cannot import it ({type(exc).__name__}: {first_line(exc)})"
                f"{where}"
            ) from None
