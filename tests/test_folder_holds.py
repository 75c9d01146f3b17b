"""One writer per folder: a run, a population or a study that is training is held, and a second
process that would write the same files (a resume, a second dqn-compare) is refused in one line.

The holds are flocks, which the kernel drops when a process ends however it ends; tests here
take them in another process where the point is two processes, and in this one (a second open
file is a second holder to flock) where it is the bookkeeping.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dqn.cli import compare_main, train_main
from dqn.config import DQNConfig
from dqn.errors import FolderBusyError, OutputError
from dqn.io import LOCK_FILE, hold_folders
from tests.test_bad_input import tree
from tests.test_compare_bad_input import BASE, tiny_yaml  # a few-second numpy-learner run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def other_process():
    """Start a process that holds the given folders until the test ends; yield its pid."""
    started = []

    def hold(*folders: Path) -> int:
        code = (
            "import sys, time\n"
            "from dqn.io import hold_folders\n"
            "with hold_folders(sys.argv[1:]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(120)\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, folders)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc.pid

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_held_folder_refuses_a_second_holder_and_names_the_first(tmp_path, other_process):
    folder = tmp_path / "run"
    pid = other_process(folder)
    with pytest.raises(
        FolderBusyError, match=f"run is being written by another process \\(pid {pid}\\)"
    ):
        with hold_folders([folder]):
            pass


def test_a_hold_ends_with_its_process_however_it_ends(tmp_path):
    folder = tmp_path / "run"
    code = f"from dqn.io import hold_folders\nwith hold_folders([{str(folder)!r}]):\n"
    code += "    print('held', flush=True)\n    input()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout.readline().strip() == "held"
    proc.kill()  # SIGKILL: no finally runs, the lock file stays
    proc.wait()
    assert (folder / LOCK_FILE).is_file()
    with hold_folders([folder]):  # the kernel dropped the lock: the stale file is taken over
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert not (folder / LOCK_FILE).exists()


def test_a_lock_file_removed_as_it_is_locked_is_taken_again_not_held_removed(tmp_path, monkeypatch):
    """The holder before ends (and removes its file) between our open and our flock: a lock on
    the removed file would hold nothing, and a third process could take the folder too."""
    import fcntl

    folder, calls = tmp_path / "run", []
    flock = fcntl.flock

    def holder_ends_first(fd, operation):
        if not calls:
            (folder / LOCK_FILE).unlink()
        calls.append(fd)
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", holder_ends_first)
    with hold_folders([folder]):
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert len(calls) == 2


def test_the_next_holder_removes_what_killed_atomic_writes_left_and_nothing_else(
    tmp_path, other_process
):
    """A process killed inside atomic_write_bytes leaves its temporary file (a run's
    .summary.json.<random>.tmp, a study's .results.csv.<random>.tmp), which no resume or rerun
    removed. The folder's next holder, its only writer, does; a refused one touches nothing."""
    import tempfile

    from dqn.io import tmp_prefix

    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    pid = other_process(folder)  # a writer, which the test kills later

    def temporary(name: str, where: Path = folder) -> Path:
        fd, path = tempfile.mkstemp(prefix=tmp_prefix(where / name), suffix=".tmp", dir=where)
        os.close(fd)
        return Path(path)

    left = [temporary("summary.json"), temporary("metrics.csv"), temporary("results.csv")]
    kept = [
        temporary("summary.json", folder / "sub"),  # not the held folder's own
        folder / ".notes.tmp",  # no mkstemp name
        folder / "summary.json.abcdefgh.tmp",  # not hidden
        folder / ".summary.json.abcdefgh.tmp.bak",
        folder / ".backup.20240101.tmp",  # a user's, of that shape, for no file of dqn's
        folder / ".metrics.csv.backup.tmp",  # of a dqn name, but not mkstemp's 8 characters
        temporary("seed0.gif"),  # a dqn-evaluate --gif there, which holds no folder
    ]
    for path in kept[1:6]:
        path.write_text("yours")
    # of dqn's names, but a folder (write_dir_atomically's are tidied apart) and a link
    (folder / ".metrics.csv.abcdefgh.tmp").mkdir()
    (folder / ".config.yaml.abcdefgh.tmp").symlink_to(kept[1])
    kept += [folder / ".metrics.csv.abcdefgh.tmp", folder / ".config.yaml.abcdefgh.tmp"]
    with pytest.raises(FolderBusyError):  # the holder's temporaries may be mid-write
        with hold_folders([folder]):
            pass
    assert all(path.exists() for path in left + kept)
    os.kill(pid, signal.SIGKILL)  # as a writer is killed: its flock goes with it
    deadline = time.monotonic() + 60
    while True:
        try:
            with hold_folders([folder]):
                break
        except FolderBusyError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert [path for path in left if path.exists()] == []
    assert all(path.exists() for path in kept)


def test_the_names_of_dqn_s_files_in_held_folders_are_the_modules(tmp_path, monkeypatch):
    """HELD_FOLDER_FILES is written out in dqn.io (which imports no other module of dqn): it
    holds each name the modules that write those folders name. And a temporary that cannot be
    removed is left, the folder held all the same and let go after."""
    from dqn.agent_files import POPULATION_FILE, STEP_FILE
    from dqn.io import HELD_FOLDER_FILES, tmp_prefix
    from dqn.loop import INIT_FROM_FILE
    from dqn.population_files import TIMING_FILE
    from dqn.report import STUDY_FIGURES
    from dqn.study_runs import ERROR_FILE, PLAN_FILE

    named = {POPULATION_FILE, STEP_FILE, INIT_FROM_FILE, TIMING_FILE, ERROR_FILE, PLAN_FILE}
    named |= {"config.yaml", "metrics.csv", "summary.json"}  # a run's
    named |= {"summary.md", "results.json", "results.csv", *STUDY_FIGURES}  # a study's
    assert HELD_FOLDER_FILES == named

    folder = tmp_path / "run"
    folder.mkdir()
    stuck = folder / f"{tmp_prefix(folder / 'summary.json')}abcd1234.tmp"
    stuck.write_text("")
    unlink = os.unlink

    def refused(path, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(1, "Operation not permitted", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    with hold_folders([folder]):
        assert stuck.exists()
    with hold_folders([folder]):  # the first hold was let go
        pass
    monkeypatch.undo()

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", unreadable)
    with pytest.raises(PermissionError):
        with hold_folders([folder]):
            pass
    monkeypatch.undo()
    with hold_folders([folder]):  # let go again: not "being written by" this very process
        pass
    assert not (folder / LOCK_FILE).exists()


def test_a_stale_lock_file_longer_than_the_new_holders_pid_is_rewritten_whole(tmp_path):
    # A killed holder's pid of more digits than ours: written over its start, the file read
    # "<ours>9\n" and the refusal of a second holder named no pid.
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text("9" * 12 + "\n")  # flocked by no one: its process died
    with hold_folders([folder]):
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_a_holder_that_has_not_written_its_pid_yet_is_named_without_one(tmp_path):
    import fcntl

    from dqn.io import check_not_held

    folder = tmp_path / "run"
    folder.mkdir()
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # locked, still empty
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(FolderBusyError) as busy:
            check_not_held(folder)
    finally:
        os.close(fd)
    assert str(busy.value).startswith(f"{folder} is being written by another process: wait")


def test_a_filesystem_that_cannot_lock_leaves_its_folders_unheld_not_refused(tmp_path, monkeypatch):
    # NFS without a lock daemon refuses flock with ENOLCK: such folders are written unheld.
    import errno
    import fcntl

    from dqn.io import check_not_held

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    folder = tmp_path / "run"
    with hold_folders([folder]):
        (folder / "summary.json").write_text("{}")
        check_not_held(folder)  # nothing said: not held
    assert (folder / "summary.json").is_file()


def test_a_folder_that_cannot_be_synced_is_still_written(tmp_path, monkeypatch):
    # Some filesystems refuse fsync on a folder's descriptor (EINVAL, EBADF): its files were
    # synced one by one, and a checkpoint there was refused as "cannot write".
    import errno
    import stat

    from dqn.io import write_dir_atomically

    fsync = os.fsync

    def files_only(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", files_only)
    final = write_dir_atomically(tmp_path / "step", lambda f: (f / "v").write_text("1"))
    assert (final / "v").read_text() == "1"

    def none(fd):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fsync", none)  # a file that cannot be synced is a failed write
    with pytest.raises(OSError, match="Invalid argument"):
        write_dir_atomically(tmp_path / "other", lambda f: (f / "v").write_text("1"))
    assert not (tmp_path / "other").exists()


def test_a_lock_file_that_is_no_file_is_looked_at_without_waiting(tmp_path):
    # A .lock that is a named pipe: opened to read, it waited for a writer, and dqn-train
    # --run-dir there hung where it had said at once that the folder is not empty.
    import threading

    from dqn.io import check_not_held

    folder = tmp_path / "fifo"
    folder.mkdir()
    os.mkfifo(folder / LOCK_FILE)
    looked = threading.Thread(target=check_not_held, args=(folder,), daemon=True)
    looked.start()
    looked.join(timeout=30)
    assert not looked.is_alive()
    # To hold the folder, a pipe there is named: it took no pid ("cannot write the run:
    # Invalid argument"), and its descriptor was left open.
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OutputError, match=f"{folder / LOCK_FILE} is not a file: remove it"):
        with hold_folders([folder]):
            pass
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_lock_file_that_is_a_link_is_refused_and_what_it_leads_to_is_left_alone(tmp_path):
    # Opened through the link, the pid overwrote the file it leads to, wherever that was (and a
    # dangling link made a file there), and the release then removed the link.
    outside = tmp_path / "outside.txt"
    outside.write_text("kept")
    for target in (outside, tmp_path / "not-there"):
        folder = tmp_path / f"to-{target.name}"
        folder.mkdir()
        (folder / LOCK_FILE).symlink_to(target)
        with pytest.raises(OutputError, match=f"{folder / LOCK_FILE} is a link, not a file"):
            with hold_folders([folder]):
                pass
        assert (folder / LOCK_FILE).is_symlink()
    assert outside.read_text() == "kept" and not (tmp_path / "not-there").exists()


def test_holding_several_folders_is_all_or_nothing(tmp_path):
    free, busy = tmp_path / "free", tmp_path / "busy"
    free.mkdir()
    with hold_folders([busy]):
        with pytest.raises(FolderBusyError, match="busy is being written"):
            with hold_folders([free, busy]):
                pass
        with hold_folders([free]):  # the refused hold let go of the folder it had taken
            pass
    assert not busy.exists()  # made by the hold, left empty: removed again
    assert free.is_dir() and list(free.iterdir()) == []


def test_a_run_being_trained_refuses_a_resume_and_is_left_as_it_was(
    tiny_run_copy, other_process, capsys
):
    # The run lost its last checkpoint and summary, as if killed: a resume would train it on.
    (tiny_run_copy / "summary.json").unlink()
    shutil.rmtree(tiny_run_copy / "checkpoints" / "step-000000600")
    pid = other_process(tiny_run_copy)
    before = tree(tiny_run_copy)
    assert train_main(["--resume", str(tiny_run_copy), "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"dqn-train: error: {tiny_run_copy} is being written by another process (pid {pid}): "
        "wait until it ends, or stop it, then run this again"
    ]
    assert tree(tiny_run_copy) == before  # metrics.csv not cut back, no checkpoint set aside


@pytest.mark.parametrize("flag", ["--resume", "--run-dir"])
def test_a_run_held_before_its_first_checkpoint_is_named_busy_not_checkpointless(
    flag, tmp_path, other_process, capsys
):
    # A run another process has started and not checkpointed yet: "no checkpoints, delete it"
    # would be the wrong advice, to its resume and to the same --run-dir started again a
    # second later ("holds no checkpoint to continue from: delete it", of a run that trained).
    run = tmp_path / "run"
    run.mkdir()
    DQNConfig().to_yaml(run / "config.yaml")
    pid = other_process(run)
    before = tree(run)
    assert train_main([flag, str(run), "--no-progress"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"dqn-train: error: {run} is being written by another process (pid {pid})"
    )
    assert tree(run) == before
    if flag == "--run-dir":
        (run / ".lock").unlink()  # no hold to find: the folder is only named as not new
        assert train_main([flag, str(run), "--no-progress"]) == 2
        assert "holds no checkpoint to continue from" in capsys.readouterr().err


def test_a_study_being_trained_refuses_the_same_command_from_another_process(
    tmp_path, other_process, capsys
):
    out = tmp_path / "study"
    config = tiny_yaml(tmp_path)
    pid = other_process(out)
    before = tree(tmp_path)
    args = ["--config", config, "--variants", "l2", "--seeds", "1", "--out", out, "--no-progress"]
    assert compare_main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"study is being written by another process (pid {pid})" in lines[0]
    assert tree(tmp_path) == before and not (out / "runs").exists()


def test_a_population_whose_member_run_is_being_resumed_alone_refuses_to_resume(
    tmp_path, other_process
):
    """A population's members are runs (dqn-train --resume takes one): while another process
    holds one, resuming the population is refused before anything is read or written."""
    from dqn.population import resume_population, train_population

    train_population(BASE, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False)
    member = tmp_path / "p" / "member1-seed2"
    pid = other_process(member)
    before = tree(tmp_path)
    with pytest.raises(FolderBusyError, match=f"member1-seed2 is being written .* \\(pid {pid}\\)"):
        resume_population(tmp_path / "p", progress=False)
    assert tree(tmp_path) == before
