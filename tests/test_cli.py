"""The command line end to end (bad input: tests/test_bad_input.py)."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(module_main, *args, cwd):
    code = f"import sys; from dqn.cli import {module_main}; sys.exit({module_main}(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_a_run_folder_that_is_a_file_is_refused_before_anything_is_built(tmp_path, capsys):
    # It was refused later, by mkdir ("cannot create the run folder ...: File exists"), after
    # the envs and the agent were built.
    from dqn.cli import train_main

    afile = tmp_path / "afile"
    afile.write_text("yours")
    assert train_main(["--run-dir", str(afile), "--no-progress"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [
        f"dqn-train: error: --run-dir {afile} is a file: give a folder that does not exist yet"
    ], said
    assert afile.read_text() == "yours"


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = run(
        "train_main",
        "--config",
        str(ROOT / "configs" / "cartpole.yaml"),
        "--no-progress",
        "--run-dir",
        str(run_dir),
        "--set",
        "total_env_steps=3000",
        "learning_starts_env_steps=500",
        "eval_every_env_steps=1000",
        "hidden_sizes=[32,32]",
        "train_every_env_steps=4",
        "gradient_steps_per_train=1",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "final greedy evaluation" in proc.stdout
    for name in (
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "checkpoints/step-000003000/agent/online.keras",
    ):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").iterdir()), "no TensorBoard event file"
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + evaluations at 1000, 2000, 3000
    proc = run("evaluate_main", str(run_dir), "--episodes", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "greedy return" in proc.stdout
    # Which agent it evaluated: the newest checkpoint's, after the run's gradient steps.
    grad_steps = int(rows[-1].split(",")[1])
    agent = run_dir / "checkpoints" / "step-000003000" / "agent"
    assert f"agent: {agent} ({grad_steps:,} gradient steps)" in proc.stdout.splitlines()


def test_ctrl_c_during_dqn_evaluate_prints_one_line_and_exits_130(tiny_run, monkeypatch, capsys):
    # It printed a KeyboardInterrupt traceback.
    from dqn import evaluation
    from dqn.cli import evaluate_main

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "evaluate_side_by_side", stopped)
    assert evaluate_main([str(tiny_run), "--episodes", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["dqn-evaluate: error: interrupted"]


def test_sigterm_during_dqn_evaluate_prints_one_line_and_exits_143(tiny_run, monkeypatch, capsys):
    # `timeout 60 dqn-evaluate RUN` ended it silently with 143, no line saying why.
    from dqn import evaluation
    from dqn.cli import evaluate_main

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler raises here

    monkeypatch.setattr(evaluation, "evaluate_side_by_side", signalled)
    assert evaluate_main([str(tiny_run), "--episodes", "1"]) == 143
    assert capsys.readouterr().err.strip().splitlines() == ["dqn-evaluate: error: interrupted"]


@pytest.mark.parametrize("run_dir", [True, False], ids=["--run-dir", "output_dir"])
def test_sigterm_before_the_loop_says_so_and_takes_away_the_folders_it_made(
    run_dir, tmp_path, monkeypatch, capsys
):
    # `timeout` or `kill` while TensorFlow imported ended dqn-train silently (143) and left an
    # empty run folder behind, which a later --run-dir of the same name then refused.
    from dqn import cli

    def signalled(num_threads=1):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler raises here

    monkeypatch.setattr(cli, "quiet_tensorflow", signalled)
    before = signal.getsignal(signal.SIGTERM)  # pytest-xdist's worker has its own
    where = tmp_path / "new" / "deeper"
    args = ["--run-dir", str(where / "run")] if run_dir else ["--set", f"output_dir={where}"]
    assert cli.train_main([*args, "--set", "total_env_steps=2000"]) == 143
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["dqn-train: error: interrupted before training started"], lines
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before  # given back


def test_a_refusal_leaves_the_output_dir_it_made_once_another_run_has_written_there(
    tmp_path, monkeypatch, capsys
):
    # Another dqn-train may start writing to the same new output_dir meanwhile: its run stays,
    # and the refusal is still the one line said, not the cleanup's "Directory not empty".
    from dqn import cli, loop
    from dqn.errors import ConfigError

    out = tmp_path / "new"

    def refused(config, run_dir, progress, init_from):
        (out / "other-run").mkdir()
        raise ConfigError("refused before anything was written")

    monkeypatch.setattr(loop, "train", refused)
    assert cli.train_main(["--set", f"output_dir={out}", "--set", "total_env_steps=2000"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["dqn-train: error: refused before anything was written"], lines
    assert [p.name for p in out.iterdir()] == ["other-run"]  # this run's own folder is gone


class Stream(io.StringIO):
    """stderr as a terminal (``isatty``) or as a log file."""

    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def draw(monkeypatch, terminal: bool, updates: int = 4) -> str:
    """What a progress bar of 1,000 env steps writes to stderr over ``updates`` updates."""
    from dqn.terminal import progress_bar

    stream = Stream(terminal)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = progress_bar(1000, desc="run")
    for _ in range(updates):
        bar.update(1000 // updates)
    bar.close()
    return stream.getvalue()


def test_the_progress_bar_redraws_its_line_in_place_on_a_terminal(monkeypatch):
    out = draw(monkeypatch, terminal=True)
    assert out.count("\r") >= 2 and "1000/1000" in out


def test_in_a_notebook_the_progress_bar_redraws_in_place_too(monkeypatch):
    # A Jupyter kernel's stderr (ipykernel.iostream.OutStream) says isatty() is False, but the
    # notebook draws '\r' in place: a line every 30 s there would hide the bar.
    from dqn.terminal import progress_bar

    kernel_stream = type("OutStream", (Stream,), {"__module__": "ipykernel.iostream"})(False)
    monkeypatch.setattr(sys, "stderr", kernel_stream)
    bar = progress_bar(1000)
    for _ in range(4):
        bar.update(250)
    bar.close()
    assert kernel_stream.getvalue().count("\r") >= 2


def test_in_a_log_the_progress_bar_writes_a_whole_line_at_the_start_and_at_the_end(monkeypatch):
    # `dqn-train > train.log 2>&1`: tqdm's in-place redraws ('\r' + the bar, every 0.5 s) all
    # stayed on one line of the file; now a line at most every LOG_EVERY_SECONDS (30 s), so
    # these four quick updates write the first and the last line only.
    lines = draw(monkeypatch, terminal=False).split("\n")
    assert lines[-1] == ""  # every line ends
    assert "\r" not in "".join(lines)
    assert lines[0].startswith("run:   0%") and "0/1000" in lines[0]
    assert lines[1].startswith("run: 100%") and "1000/1000" in lines[1]
    assert len(lines) == 3


def test_in_a_log_tqdms_monitor_thread_does_not_redraw_the_bar_sooner_either(monkeypatch):
    # tqdm's monitor thread redraws a bar that has not drawn for `maxinterval` (10 s by
    # default): a population's log got lines 19 and 11 s apart, between the 30 s ones.
    from tqdm._monitor import TMonitor

    from dqn.terminal import LOG_EVERY_SECONDS, progress_bar

    def monitors() -> set:
        return {t for t in threading.enumerate() if isinstance(t, TMonitor)}

    before = monitors()
    monkeypatch.setattr(sys, "stderr", Stream(terminal=False))
    bar = progress_bar(1000)
    assert bar.mininterval == bar.maxinterval == LOG_EVERY_SECONDS
    # Nor at all: its redraw at the 30 s mark, then the next update's line, put two lines in
    # the same second of a study's log. A bar in a log starts no monitor thread.
    assert type(bar).monitor_interval == 0 and monitors() <= before
    bar.close()
    monkeypatch.setattr(sys, "stderr", Stream(terminal=True))
    bar = progress_bar(1000)  # on a terminal, the bar is redrawn in place: tqdm's own
    assert type(bar).monitor_interval == 10
    bar.close()


def test_in_a_log_every_line_the_bar_writes_is_a_whole_bar(monkeypatch):
    from dqn import terminal

    monkeypatch.setattr(terminal, "LOG_EVERY_SECONDS", 0.0)  # a line at every update
    *lines, last = draw(monkeypatch, terminal=False, updates=10).split("\n")  # not at "\r"
    assert len(lines) >= 5 and last == "" and "\r" not in "".join(lines)
    assert all(line.startswith("run: ") and "/1000 [" in line for line in lines)


def test_in_a_log_the_bar_s_last_line_is_not_written_again_when_it_closes(monkeypatch):
    # A run whose final evaluation outlasted LOG_EVERY_SECONDS printed its 100% line, then
    # close() printed it again.
    from dqn import terminal

    monkeypatch.setattr(terminal, "LOG_EVERY_SECONDS", 0.0)
    lines = draw(monkeypatch, terminal=False, updates=4).splitlines()
    assert sum("1000/1000" in line for line in lines) == 1, lines


def test_a_warning_prints_once_a_command_and_from_the_line_s_start_on_a_terminal(monkeypatch):
    # CartPole-v0's "out of date" came three times from dqn-evaluate; on a terminal a study's
    # worker glued it to the end of the progress bar's line.
    from dqn import terminal

    for tty in (False, True):
        stream = Stream(tty)
        monkeypatch.setattr(sys, "stderr", stream)
        show = terminal.warning_printer("dqn-x")
        show(UserWarning(f"old env {tty}"), UserWarning, "f.py", 1)
        show(UserWarning(f"old env {tty}"), UserWarning, "g.py", 2)
        start = "\r\x1b[K" if tty else ""
        assert stream.getvalue() == f"{start}dqn-x: warning: old env {tty}\n"


def test_a_bar_updated_past_its_total_ends_at_100_percent(monkeypatch):
    # A vector run's last loop step can pass total_env_steps: tqdm then drew "1003step [...]"
    # with no bar and no percentage.
    from dqn.terminal import progress_bar

    stream = Stream(terminal=False)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = progress_bar(1000, desc="run")
    bar.update(998)
    bar.update(5)
    bar.close()
    assert (bar.n, bar.total) == (1003, 1003)
    assert stream.getvalue().splitlines()[-1].startswith("run: 100%|")


@pytest.mark.parametrize("terminal", [True, False])
def test_a_bar_closed_short_of_its_total_gives_no_time_left(monkeypatch, terminal):
    # A study stopped by Ctrl-C while its workers started ended on "[00:09<3:41:10, 1.2step/s]":
    # an estimate of hours for work that had just been stopped. A finished bar keeps its own.
    from dqn.terminal import progress_bar

    stream = Stream(terminal)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = progress_bar(1000, desc="run")
    bar.update(10)
    bar.close()
    last = stream.getvalue().replace("\r", "\n").splitlines()[-1]
    assert re.search(r"10/1000 \[\d\d:\d\d, ", last) and "<" not in last, last
    assert draw(monkeypatch, terminal).replace("\r", "\n").splitlines()[-1].count("<") == 1


def make_recipe(target: str) -> list[str]:
    """The command of a Makefile target's one-command recipe, as arguments ($(ARGS) left out)."""
    import shlex

    lines = (ROOT / "Makefile").read_text().replace("\\\n", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    return [arg for arg in shlex.split(lines[start + 1]) if arg != "$(ARGS)"]


def test_make_trust_is_the_30_seed_check_of_the_default_config(monkeypatch):
    """`make trust` (README: "On your machine") trains seeds 0-29 of DQNConfig()'s own config,
    one variant of it, nothing changed; checked on the arguments it gives the study."""
    from dqn import compare
    from dqn.cli import compare_main
    from dqn.config import DQNConfig
    from dqn.errors import ConfigError

    program, *args = make_recipe("trust")
    assert program == "$(BIN)/dqn-compare"
    got = {}

    def study(base, variants, seeds, out, **kwargs):
        got.update(base=base, variants=variants, seeds=seeds, out=out)
        raise ConfigError("stopped here")  # no training: the arguments are the check

    monkeypatch.setattr(compare, "run_comparison", study)
    monkeypatch.chdir(ROOT)  # the recipe's paths are the repository's
    assert compare_main(args) == 2
    [variant] = got["variants"]
    assert variant.config(got["base"], 0) == DQNConfig(seed=0)
    assert got["seeds"] == list(range(30)) and got["out"] == Path("results/trust-check")


def test_make_test_other_cpu_is_refused_in_one_line_off_x86(tmp_path):
    """Its XLA and OpenBLAS settings name x86 kernels: elsewhere the target says so and exits 2.
    Run with a `uname` that answers aarch64; the venv is taken as built (-o), and ARGS would
    only collect one file if the refusal were missing."""
    import os
    import shutil

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uname").write_text("#!/bin/sh\necho aarch64\n")
    (fake / "uname").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    args = [
        "-o",
        ".venv/.installed",
        "test-other-cpu",
        "ARGS=--collect-only -q tests/test_config.py",
    ]
    proc = subprocess.run(
        ["make", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "test-other-cpu: x86-64 only" in proc.stderr and "this machine is aarch64" in proc.stderr
    assert "collected" not in proc.stdout


@pytest.mark.parametrize("closed", ["stdout", "stdout and stderr"])
def test_a_command_whose_reader_is_gone_finishes_its_run_and_exits_0(closed, tmp_path):
    """`dqn-train | head`, or `2>&1 | tee log` that the same Ctrl-C ended: a pipe with no
    reader. Writing to it raised BrokenPipeError: a traceback, exit 1, no summary.json."""
    import os

    from tests.conftest import buffered_env
    from tests.test_compare_bad_input import tiny_yaml  # a few-second numpy-learner run

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to write_end now fails with EPIPE
    code = "import sys; from dqn.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
    args = ["--config", str(tiny_yaml(tmp_path)), "--run-dir", str(tmp_path / "run")]
    stderr = write_end if closed == "stdout and stderr" else subprocess.PIPE
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        stdout=write_end,
        stderr=stderr,
        env=buffered_env(),
        timeout=300,
    )
    os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "summary.json").is_file()
    if proc.stderr is not None:
        assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr, proc.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("keys", [False, True], ids=["run", "--keys"])
def test_a_command_whose_stdout_cannot_be_written_finishes_and_says_so_in_one_line(keys, tmp_path):
    """`> /dev/full`, or a log on a full disk: the run was saved, then a traceback came from
    its summary's print, exit 1 (dqn-evaluate's named the run folder it had read)."""
    from tests.conftest import buffered_env
    from tests.test_compare_bad_input import tiny_yaml

    code = "import sys; from dqn.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
    args = ["--keys"] if keys else ["--config", str(tiny_yaml(tmp_path)), "--run-dir"]
    args += [] if keys else [str(tmp_path / "run")]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=buffered_env(),
            timeout=300,
        )
    assert proc.returncode == 2, proc.stderr
    said = "dqn-train: error: cannot write to standard output: No space left on device\n"
    assert proc.stderr.endswith(said) and "Traceback" not in proc.stderr, proc.stderr
    assert keys or (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.parametrize("fd", [1, 2])
def test_a_closed_stream_given_dev_null_is_passed_on_to_child_processes(fd):
    # os.open's /dev/null took the free descriptor itself, closed on exec: dqn-compare's
    # workers, spawned processes, started with no stderr, and every run failed on
    # sys.stderr.flush() (with stdout closed, each printed "Exception ignored").
    code = (
        "import os, subprocess, sys\n"
        "from dqn.terminal import outlive_readers\n"
        "outlive_readers()\n"
        f"assert os.get_inheritable({fd})\n"
        "child = 'import sys; sys.exit(sys.stdout is None or sys.stderr is None)'\n"
        "sys.exit(subprocess.run([sys.executable, '-c', child]).returncode)\n"
    )
    done = subprocess.run(
        ["bash", "-c", f'"$0" -c "$1" {fd}>&-', sys.executable, code], cwd=ROOT, timeout=60
    )
    assert done.returncode == 0


@pytest.mark.parametrize("closed", [(1,), (2,), (1, 2)], ids=["stdout", "stderr", "both"])
def test_a_command_started_with_its_output_closed_finishes_its_run_and_exits_0(closed, tmp_path):
    """`dqn-train >&-`, `2>&-`: Python makes a closed stream None. Writes to it raised
    AttributeError (exit 1 or 120, a finished run's summary lost with stderr closed), and the
    descriptor was free for the next file the run opened."""
    import os

    from tests.test_compare_bad_input import tiny_yaml  # a few-second numpy-learner run

    code = "import sys; from dqn.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
    args = ["--config", str(tiny_yaml(tmp_path)), "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        stdout=None if 1 in closed else subprocess.PIPE,
        stderr=None if 2 in closed else subprocess.PIPE,
        preexec_fn=lambda: [os.close(fd) for fd in closed],  # noqa: PLW1509 (no threads here)
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "summary.json").is_file()
    if proc.stderr is not None:
        assert b"Traceback" not in proc.stderr, proc.stderr
    if proc.stdout is not None:
        assert b"run folder: " in proc.stdout


def test_ctrl_c_while_a_command_imports_what_it_parses_with_is_one_line(
    tmp_path, monkeypatch, capsys
):
    # dqn-compare's parser imports the study's modules (scipy's statistics, most of a second)
    # and dqn-export's first check imports what it checks with: a Ctrl-C then gave a traceback.
    from dqn import cli, export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "compare_parser", interrupted)
    monkeypatch.setattr(export, "_check_out", interrupted)
    assert cli.compare_main(["--seeds", "1"]) == 130
    assert export.main([str(tmp_path / "run"), "--out", str(tmp_path / "m")]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "dqn-compare: error: interrupted before the study started",
        "dqn-export: error: interrupted; nothing written",
    ]


@pytest.mark.parametrize(
    "module, name, prog",
    [
        ("dqn.cli", "train_main", "dqn-train"),
        ("dqn.cli", "evaluate_main", "dqn-evaluate"),
        ("dqn.export", "main", "dqn-export"),
        ("dqn.backprop.cli", "main", "dqn-backprop"),
    ],
)
def test_ctrl_c_while_a_command_parses_its_arguments_is_one_line(
    module, name, prog, monkeypatch, capsys
):
    # In its first fraction of a second (`timeout -s INT 0.3 dqn-export ...`) a Ctrl-C gave a
    # traceback through the parser's imports, exit 130.
    import argparse
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupted)
    assert getattr(importlib.import_module(module), name)(["--help"]) == 130
    assert capsys.readouterr().err.splitlines() == [f"{prog}: error: interrupted"]


def test_once_a_command_s_work_is_done_a_signal_leaves_its_exit_code(monkeypatch):
    # `timeout 14 dqn-export ...` that fired after the success line, during the interpreter's
    # shutdown, made the exit code 130 or 143: the export was whole, and `&& deploy` skipped.
    from dqn.backprop.cli import main

    stops = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.getsignal(sig) for sig in stops}
    try:
        assert main(["--version"]) == 0  # called from Python (a test): handlers left alone
        assert {sig: signal.getsignal(sig) for sig in stops} == saved
        monkeypatch.setattr(sys, "argv", ["/usr/local/bin/dqn-backprop", "--version"])
        assert main(["--version"]) == 0  # the process is the command
        assert [signal.getsignal(sig) for sig in stops] == [signal.SIG_IGN] * 2
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_signal_while_the_command_s_name_is_looked_up_leaves_its_exit_code(monkeypatch):
    # The name is read from the installed entry points, a moment: Ctrl-C then raised through
    # importlib.metadata, a traceback after a complete export's success line.
    import os
    import threading

    from dqn import terminal
    from dqn.backprop.cli import main

    def signalled_while_looking(main):
        os.kill(os.getpid(), signal.SIGINT)
        return "dqn-backprop"

    stops = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.getsignal(sig) for sig in stops}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal
    monkeypatch.setattr(terminal, "_prog", signalled_while_looking)
    # Another thread, as TensorFlow's: one that blocks nothing takes what this one blocks.
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        monkeypatch.setattr(sys, "argv", ["/usr/local/bin/dqn-backprop", "--version"])
        try:
            code = main(["--version"])  # the process is the command: the signal is dropped
        except KeyboardInterrupt:  # (not left to stop the test session)
            pytest.fail("the signal raised a KeyboardInterrupt after the command's work")
        assert code == 0
        signal.signal(signal.SIGINT, signal.default_int_handler)
        monkeypatch.setattr(sys, "argv", ["pytest"])
        with pytest.raises(KeyboardInterrupt):  # from Python: raised, once the name is known
            main(["--version"])
    finally:
        done.set()
        other.join()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("command", ["dqn-train", "dqn-evaluate", "dqn-compare"])
def test_a_command_called_from_python_gives_back_the_callers_sigterm_handler(
    command, capsys, tmp_path
):
    # In a notebook or a script, a later `kill` must reach the caller's own handler, not the
    # command's (which raises a KeyboardInterrupt).
    from dqn import cli

    main = {"dqn-train": cli.train_main, "dqn-evaluate": cli.evaluate_main}.get(
        command, cli.compare_main
    )
    args = ["--resume", "/no/such/run"] if command == "dqn-train" else ["/no/such/run"]
    if command == "dqn-compare":  # refused inside the study, once it holds the signals
        (tmp_path / "a_file").write_text("")
        args = ["--seeds", "1", "--variants", "l2", "--out", str(tmp_path / "a_file")]

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(args) == 2
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
    capsys.readouterr()


def test_held_signals_are_noted_not_raised_and_the_handlers_come_back():
    import os

    from dqn.command_line import held_signals
    from dqn.errors import SignalInterrupt

    before = signal.getsignal(signal.SIGTERM)
    with held_signals() as held:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert held.signum == signal.SIGTERM  # the first one, not raised
        with pytest.raises(SignalInterrupt) as raised:
            held.raise_if_noted()
    assert raised.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_once_a_write_meets_a_closed_pipe_the_streams_later_output_goes_nowhere():
    """The interpreter flushes the stream itself once more at exit: text written after the
    first failure (the summary) raised there, 'Exception ignored' and exit code 120."""
    import os

    from dqn.terminal import _Survivor

    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", buffering=4096) as stream:
        survivor = _Survivor(stream)
        survivor.write("x" * 100_000)  # more than the buffer: written at once, and fails
        survivor.write("the summary\n")  # buffered
        stream.flush()  # as the interpreter does at exit: must not raise


@pytest.mark.parametrize(
    "main",
    [
        "dqn.cli:train_main",
        "dqn.cli:evaluate_main",
        "dqn.cli:compare_main",
        "dqn.export:main",
        "dqn.backprop.cli:main",
    ],
)
def test_every_command_says_its_version(main, capsys):
    import importlib
    from importlib.metadata import version

    import dqn

    module, name = main.split(":")
    try:  # dqn-backprop returns its exit code; the others exit as argparse's --help does
        code = getattr(importlib.import_module(module), name)(["--version"])
    except SystemExit as stop:
        code = stop.code
    assert code == 0
    prog, shown = capsys.readouterr().out.split()
    assert prog.startswith("dqn-") and shown == dqn.__version__ == version("dqn")


def test_keys_lists_every_config_key_with_a_default_that_set_gives_back(capsys):
    """``dqn-train --keys``: each key once, its default written so that ``--set key=<it>``
    reads back the default, then what it means."""
    from dqn.cli import train_main
    from dqn.config import FIELDS, DQNConfig

    with pytest.raises(SystemExit) as stop:
        train_main(["--keys"])
    assert stop.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert [h.split(":")[0] for h in heads] == list(FIELDS)
    assert all(len(line) <= 94 for line in lines)
    for head in heads:
        key, rest = head.split(": ", 1)
        shown = rest.rsplit("  (", 1)[0]
        assert DQNConfig.from_yaml(None, [f"{key}={shown}"]) == DQNConfig(), head
    assert "hidden_sizes: [256, 256]  (a list of integers)" in heads
    assert "loss: huber  (one of l2, clipped_delta, huber, clipped_grad)" in heads
    assert "max_grad_norm: null  (a number > 0 or null)" in heads


def test_returns_print_to_the_precision_their_size_needs():
    from dqn.cli import _episodes, _returns

    assert _returns(500.0, 0.0, 500.0, 500.0) == "500.0 +/- 0.0"
    # An env of small rewards: 0.93 in every episode read "0.9 +/- 0.0 (min 0.93, max 0.93)".
    assert _returns(0.93, 0.0, 0.93, 0.93) == "0.930 +/- 0.000"
    assert _returns(-0.5, 0.25, -0.25, -0.75) == "-0.500 +/- 0.250"
    assert _returns(9.5, 3.0, 12.5, 6.5) == "9.5 +/- 3.0"  # an episode of 12.5: tens
    assert _returns(10.0, 0.0, 10.0, 10.0) == "10.0 +/- 0.0"  # tens from 10 on
    assert (_episodes(1), _episodes(10)) == ("1 episode", "10 episodes")


def test_a_coloured_warning_prints_as_one_plain_line(capsys):
    import warnings

    from dqn.command_line import one_line_warnings

    with one_line_warnings("dqn-train"):
        # As gymnasium's passive env checker words and colours its warnings.
        warnings.warn(
            "\x1b[33mWARN: The obs returned by the `reset()` method is odd\x1b[0m", stacklevel=1
        )
    assert capsys.readouterr().err == (
        "dqn-train: warning: WARN: The obs returned by the `reset()` method is odd\n"
    )


def test_env_names_the_env_as_env_id_does():
    from dqn.cli import train_config, train_parser

    config = train_config(train_parser().parse_args(["--env", "Acrobot-v1", "--loss", "l2"]))
    assert (config.env_id, config.loss) == ("Acrobot-v1", "l2")
    config = train_config(train_parser().parse_args(["--env", "my_envs:Corridor-v0"]))
    assert config.env_id == "my_envs:Corridor-v0"


@pytest.mark.parametrize(
    "text, seed",
    [("3", 3), ("1e3", 1000), ("0x10", 16), ("1_000", 1000), ("0x_ff", 255), ("0o_17", 15)],
)
def test_seed_is_read_as_set_seed_reads_it(text, seed):
    # argparse's int refused "1e3" and "0x10", which --set seed= takes.
    from dqn.cli import train_config, train_parser

    parse = train_parser().parse_args
    assert train_config(parse(["--seed", text])).seed == seed
    assert train_config(parse(["--set", f"seed={text}"])).seed == seed


@pytest.mark.parametrize("text", ["null", "~"])
def test_seed_null_is_refused_not_read_as_no_seed_given(text):
    from dqn.cli import train_config, train_parser
    from dqn.errors import ConfigError

    with pytest.raises(ConfigError, match=f"'seed' must be an integer, got --seed {text}"):
        train_config(train_parser().parse_args(["--seed", text, "--set", "seed=7"]))


def tiny_run_args(tmp_path, **changes) -> list[str]:
    """dqn-train's arguments for the tiny run of tests/conftest.py in tmp_path/run."""
    from tests.conftest import TINY_RUN

    settings = {**TINY_RUN, **changes}
    sets = [f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in settings.items()]
    return ["--set", *sets, "--run-dir", str(tmp_path / "run"), "--no-progress"]


def test_an_output_dir_under_the_home_folder_is_made_there_not_in_a_folder_named_tilde(
    tmp_path, capsys, monkeypatch
):
    # YAML and --set output_dir=~/runs pass the tilde on as typed: a folder named "~" appeared
    # in the working folder, where rm -rf ~ to delete it deletes the home folder.
    from dqn.cli import train_main

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    args = tiny_run_args(tmp_path, output_dir="~/runs", total_env_steps=200)
    at = args.index("--run-dir")
    assert train_main(args[:at] + args[at + 2 :]) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "home" / "runs").iterdir()
    assert (run / "summary.json").is_file() and list((tmp_path / "work").iterdir()) == []


def test_a_tilde_the_shell_left_in_a_path_argument_is_the_home_folder(monkeypatch, capsys):
    # bash expands ~ in "--out ~/x" but not in "--out=~/x".
    from dqn.cli import compare_parser, evaluate_parser, train_parser
    from dqn.export import export_parser

    monkeypatch.setenv("HOME", "/home/someone")
    assert train_parser().parse_args(["--run-dir=~/r"]).run_dir == Path("/home/someone/r")
    assert export_parser().parse_args(["run", "--out=~/m"]).out == Path("/home/someone/m")
    assert evaluate_parser().parse_args(["run", "--gif=~/e.gif"]).gif == Path("/home/someone/e.gif")
    # The paths read, too: --config=~/c.yaml was "config file not found: ~/c.yaml".
    home = Path("/home/someone")
    assert train_parser().parse_args(["--config=~/c.yaml"]).config == home / "c.yaml"
    assert train_parser().parse_args(["--resume=~/r"]).resume == home / "r"
    assert train_parser().parse_args(["--init-from=~/r"]).init_from == home / "r"
    assert evaluate_parser().parse_args(["~/r"]).path == home / "r"
    assert export_parser().parse_args(["~/r", "--out", "m"]).path == home / "r"
    assert compare_parser().parse_args(["--config=~/c.yaml"]).config == home / "c.yaml"
    assert compare_parser().parse_args(["--variants-file=~/v.yaml"]).variants_file == (
        home / "v.yaml"
    )
    with pytest.raises(SystemExit) as refused:
        train_parser().parse_args(["--run-dir=~no_such_user_of_dqn/r"])
    assert refused.value.code == 2
    assert "starts with a home folder that cannot be found" in capsys.readouterr().err


def test_a_diverging_run_exits_3_in_one_line(tmp_path, capsys):
    # In process and fast: tests/test_reliability.py checks the same of a process (slow).
    from dqn.cli import train_main

    code = train_main(tiny_run_args(tmp_path, max_abs_q=1e-6))  # the first update is over it
    err = capsys.readouterr().err
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "training diverged at env step" in lines[0], err
    assert lines[0].endswith("It had no checkpoint yet"), err  # its first comes at step 200


def test_a_run_stopped_by_sigterm_exits_143_and_says_it_can_continue(tmp_path, capsys, monkeypatch):
    # In process and fast: tests/test_train.py checks the same of a process (slow).
    import signal

    from dqn import loop
    from dqn.cli import train_main

    evaluate = loop._evaluate_and_log

    def signalled(config, agent, eval_env, replay, state, step, *rest):
        if step == 300:
            signal.raise_signal(signal.SIGTERM)  # the loop's handler sets its stop flag
        return evaluate(config, agent, eval_env, replay, state, step, *rest)

    monkeypatch.setattr(loop, "_evaluate_and_log", signalled)
    code = train_main(tiny_run_args(tmp_path))
    out = capsys.readouterr().out
    assert code == 128 + signal.SIGTERM, out
    assert "300 env steps (interrupted; checkpoint saved, continue with --resume)" in out
    # Its figure is its last periodic evaluation's (of 100, 200 and 300), named with its step.
    assert "episode, at env step 300): " in out and "at env step 100" not in out


@pytest.mark.parametrize(
    "at, said",
    [
        (100, "interrupted twice, before {run} had a checkpoint: nothing to resume"),
        (
            300,
            "interrupted twice; {run}'s checkpoint of env step 200 is intact: dqn-train "
            "--resume {run} continues from it",
        ),
        (  # the newest of its two checkpoints, which --resume continues from
            500,
            "interrupted twice; {run}'s checkpoint of env step 400 is intact: dqn-train "
            "--resume {run} continues from it",
        ),
    ],
    ids=["before the first checkpoint", "after one", "after two"],
)
def test_a_second_signal_stops_at_once_and_says_what_is_kept(
    at, said, tmp_path, capsys, monkeypatch
):
    # The second signal comes during an evaluation (checkpoints every 200 env steps): the run
    # stops there, without the stop's checkpoint, and the line says what there is to resume.
    # Its handler's error is raised here as the handler raises it, without a real signal, which
    # would stop the test process if a handler were not in place.
    import signal

    from dqn import loop
    from dqn.cli import train_main
    from dqn.errors import SignalInterrupt

    evaluate = loop._evaluate_and_log

    def signalled_twice(config, agent, eval_env, replay, state, step, *rest):
        if step == at:
            raise SignalInterrupt(signal.SIGINT)
        return evaluate(config, agent, eval_env, replay, state, step, *rest)

    monkeypatch.setattr(loop, "_evaluate_and_log", signalled_twice)
    assert train_main(tiny_run_args(tmp_path)) == 128 + signal.SIGINT
    run = tmp_path / "run"
    assert capsys.readouterr().err.splitlines() == [f"dqn-train: error: {said.format(run=run)}"]


MY_NET = """
import keras


@keras.saving.register_keras_serializable(package="mynet")
class Twice(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def net(obs_dim, n_actions):
    dense = keras.layers.Dense
    return keras.Sequential([keras.Input((obs_dim,)), dense(8), Twice(), dense(n_actions)])
"""


def test_import_names_the_module_a_networks_own_classes_need(tmp_path, monkeypatch):
    """A run of a network_fn with a Keras class of the user's: the commands run in a process
    where nothing registered it, and could not open the run at all; --import MODULE loads it."""
    from dqn import DQNConfig, train
    from tests.conftest import TINY_RUN, refusal

    (tmp_path / "mynet.py").write_text(MY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    import mynet

    config = DQNConfig(**TINY_RUN).replace(total_env_steps=200, checkpoint_every_env_steps=200)
    run = tmp_path / "run"
    train(config, network_fn=mynet.net, run_dir=run, progress=False, log_tensorboard=False)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def evaluate(*args):
        code = (
            "import sys; from dqn.cli import evaluate_main; sys.exit(evaluate_main(sys.argv[1:]))"
        )
        cmd = [sys.executable, "-c", code, str(run), "--episodes", "1", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)

    line = refusal(evaluate())
    assert "uses a layer class Keras cannot find: Twice, from module mynet (import" in line
    assert line.endswith("--import MODULE)")
    done = evaluate("--import", "mynet")
    assert done.returncode == 0 and "greedy return" in done.stdout, done.stderr


MY_ENVS = """
import gymnasium

gymnasium.register(
    "MyPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=500
)
"""


def test_import_registers_the_env_of_a_run_a_script_trained(tmp_path, monkeypatch):
    """An env id a script registered is unknown to the commands' fresh processes: --import
    MODULE runs its gymnasium.register calls before the env is made, so the run can be
    evaluated and resumed (it was refused as an unknown id with or without the option)."""
    from dqn import DQNConfig, train
    from tests.conftest import TINY_RUN, refusal

    (tmp_path / "my_envs.py").write_text(MY_ENVS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_envs  # noqa: F401  (registers MyPole-v0 in this process)

    config = DQNConfig(**TINY_RUN).replace(
        env_id="MyPole-v0", total_env_steps=400, checkpoint_every_env_steps=200
    )
    config = config.replace(eval_every_env_steps=200)
    run = tmp_path / "run"
    stopped = train(
        config,
        run_dir=run,
        progress=False,
        log_tensorboard=False,
        on_eval=lambda record, agent: False,
    )
    assert stopped.summary["interrupted"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def command(main, *args):
        code = f"import sys; from dqn.cli import {main}; sys.exit({main}(sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)

    unknown = refusal(command("evaluate_main", str(run)))
    assert "unknown env id 'MyPole-v0'" in unknown and "--import MODULE" in unknown
    resumed = command("train_main", "--resume", str(run), "--no-progress", "--import", "my_envs")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 400
    done = command("evaluate_main", str(run), "--episodes", "1", "--import", "my_envs")
    assert done.returncode == 0 and done.stdout.startswith("MyPole-v0: greedy return"), done.stderr


def test_the_packages_submodules_are_reached_as_the_docs_write_them():
    """`import dqn` then `dqn.loop.resume(...)`, `dqn.export.export_policy(...)`: each
    submodule is imported on first use (TensorFlow stays out until one needs it)."""
    code = (
        "import sys, dqn\n"
        "assert callable(dqn.backprop.linear_forward) and 'tensorflow' not in sys.modules\n"
        "assert callable(dqn.loop.resume) and callable(dqn.export.export_policy)\n"
        "try:\n    dqn.no_such_thing\nexcept AttributeError as exc:\n    print(exc)\n"
        "assert getattr(dqn, 'a.b', None) is None\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "module 'dqn' has no attribute 'no_such_thing'\n"


def test_an_import_that_fails_is_one_line_naming_the_module():
    from dqn.command_line import import_modules
    from dqn.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        import_modules(["json", "no_such_module_of_mine"])
    assert str(refused.value) == (
        "--import no_such_module_of_mine: cannot import it (ModuleNotFoundError: No module "
        "named 'no_such_module_of_mine'); it must be installed or on PYTHONPATH"
    )


def test_dqn_evaluate_resets_its_episodes_as_a_runs_evaluations_by_default(tiny_run, monkeypatch):
    # Episode i from eval_seed + i, greedy, side by side: the episodes of the run's own
    # evaluations, played as it plays them, so that its --episodes 100 gives the final
    # evaluation's figure.
    from dqn import DQNConfig, evaluation
    from dqn.cli import evaluate_main

    seen = []

    def spy(agent, envs, episodes, seed):
        seen.append((episodes, len(envs), seed))
        return 0.0, 0.0, [0.0] * episodes

    monkeypatch.setattr(evaluation, "evaluate_side_by_side", spy)
    assert evaluate_main([str(tiny_run)]) == 0
    assert evaluate_main([str(tiny_run), "--episodes", "250"]) == 0
    assert seen == [(10, 10, DQNConfig().eval_seed), (250, 100, DQNConfig().eval_seed)]


def test_dqn_evaluate_prints_the_returns_of_the_episodes_played_one_after_another(tiny_run, capsys):
    # Side by side (one forward pass a step for all), the same episodes as
    # dqn.evaluation.evaluate plays one at a time: the same mean, std, min and max.
    from dqn.agent import DQNAgent
    from dqn.cli import _returns, evaluate_main
    from dqn.envs import config_env
    from dqn.evaluation import evaluate

    agent = DQNAgent.load(tiny_run)
    with config_env(agent.config) as env:
        mean, std, returns = evaluate(agent, env, 12, seed=500)
    assert len(set(returns)) > 1, returns  # episodes that differ: which is which matters
    assert evaluate_main([str(tiny_run), "--episodes", "12", "--seed", "500"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"CartPole-v1: greedy return {_returns(mean, std, *returns)} over 12 episodes "
        f"(min {min(returns):g}, max {max(returns):g})"
    )


def test_dqn_evaluate_takes_an_epsilon_and_says_it_used_one(tiny_run, capsys):
    from dqn.cli import evaluate_main

    assert evaluate_main([str(tiny_run), "--episodes", "2", "--epsilon", "0.05"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("CartPole-v1: epsilon-greedy (epsilon 0.05) return ")
    assert evaluate_main([str(tiny_run), "--episodes", "2", "--epsilon", "0.05"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == first  # seeded by --seed
    assert evaluate_main([str(tiny_run), "--epsilon", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err == "dqn-evaluate: error: --epsilon must be in [0, 1], got 1.5\n"
    # The ends of [0, 1] are rates: 1 is a uniformly random policy.
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--epsilon", "1.0"]) == 0
    assert "(epsilon 1) return " in capsys.readouterr().out
