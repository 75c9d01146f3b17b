"""``dqn-compare --backend ray``: refused in one line without Ray; with Ray, the same results as
the local backend for the same seeds, and resumable."""

import os
import sys
import types

import pytest

from dqn.cli import compare_main
from tests.test_bad_input import assert_refused
from tests.test_compare import TINY

VARIANTS = ["huber", "clipped_delta"]


def compare_args(out, *extra):
    """2 variants x 2 seeds of the tiny config (written next to ``out``)."""
    config = out.parent / "tiny.yaml"
    if not config.exists():
        TINY.to_yaml(config)
    args = ["--config", str(config), "--variants", *VARIANTS, "--seeds", "2"]
    return [*args, "--out", str(out), "--no-progress", *extra]


def test_without_ray_the_ray_backend_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.chdir(tmp_path)
    args = compare_args(tmp_path / "out", "--backend", "ray")
    assert_refused(
        compare_main,
        args,
        ["--backend ray needs Ray", 'pip install "ray==2.60.0"', 'pip install -e ".[ray]"'],
        capsys,
        tmp_path,
    )
    assert not (tmp_path / "out").exists()


def test_an_address_without_the_ray_backend_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = compare_args(tmp_path / "out", "--address", "head:6379")
    assert_refused(compare_main, args, ["--address", "--backend ray"], capsys, tmp_path)


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray not installed (the 'ray' extra)")
    from dqn.ray_backend import (
        _changed_by_ray,
        _process_state,
        _restore_process_state,
        _workers_at_our_priority,
    )

    # Started as dqn starts a local Ray (below): workers not reniced by +15, which on cores
    # shared with other tests made this file's study ~10x slower.
    before = _process_state()  # and the worker's process left as it was for later tests
    with _workers_at_our_priority(local=True):
        ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, configure_logging=False)
    before = _changed_by_ray(before)
    try:
        yield ray
    finally:
        ray.shutdown()
        _restore_process_state(before)


def result_rows(out):
    import csv

    with open(out / "results.csv", newline="") as fh:
        return [
            {k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(fh)
        ]


@pytest.mark.slow
def test_the_ray_backend_gives_the_local_results_and_resumes(tmp_path, local_ray, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert compare_main(compare_args(local, "--workers", "2")) == 0
    assert compare_main(compare_args(remote, "--backend", "ray")) == 0
    capsys.readouterr()

    rows = result_rows(remote)
    assert [(r["variant"], r["seed"]) for r in rows] == [
        (v, str(s)) for v in VARIANTS for s in (0, 1)
    ]
    assert rows == result_rows(local)
    names = sorted(p.name for p in (local / "runs").iterdir())
    assert names == sorted(p.name for p in (remote / "runs").iterdir()) and len(names) == 4
    for name in names:
        metrics = [out / "runs" / name / "run" / "metrics.csv" for out in (local, remote)]
        assert metrics[0].read_bytes() == metrics[1].read_bytes(), name

    # The tasks ran this checkout's dqn in Ray's own worker processes, not in this one.
    @local_ray.remote(num_cpus=1)
    def where():
        import dqn

        return dqn.__file__, os.getpid()

    file, pid = local_ray.get(where.remote())
    assert file == sys.modules["dqn"].__file__ and pid != os.getpid()

    # Resumable: a second call on the same OUT redoes nothing.
    done = {p: p.stat().st_mtime_ns for p in (remote / "runs").glob("*/result.json")}
    assert compare_main(compare_args(remote, "--backend", "ray")) == 0
    assert {p: p.stat().st_mtime_ns for p in done} == done
    assert result_rows(remote) == rows


def test_an_unreachable_cluster_address_is_refused_before_anything_is_written(tmp_path, capsys):
    # Nothing listens on port 1 of this machine: refused at once, not retried for minutes.
    pytest.importorskip("ray")
    from dqn.cli import compare_main

    out = tmp_path / "out"
    code = compare_main(
        [
            "--backend",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--seeds",
            "1",
            "--variants",
            "huber",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "cannot reach a Ray cluster at 127.0.0.1:1" in lines[0]
    assert not out.exists()


def test_an_unreachable_ray_address_says_it_came_from_the_environment():
    # A user who gave no --address read "cannot reach a Ray cluster at 127.0.0.1:1".
    from dqn.errors import DQNError
    from dqn.ray_backend import check_reachable

    with pytest.raises(DQNError) as refused:
        check_reachable("127.0.0.1:1", source="RAY_ADDRESS")
    assert str(refused.value).startswith(
        "cannot reach a Ray cluster at 127.0.0.1:1 (from RAY_ADDRESS): "
    )
    assert str(refused.value).endswith(
        "unset RAY_ADDRESS for a Ray of dqn's own on this machine, or give --address"
    )


@pytest.mark.parametrize("address", ["10.0.0.1", "head:ray", "ray://head:", "head:63x9"])
def test_an_address_that_is_not_host_and_port_is_refused_without_connecting(address):
    from dqn.errors import DQNError
    from dqn.ray_backend import check_reachable

    with pytest.raises(DQNError, match="is not HOST:PORT"):
        check_reachable(address)


def test_the_address_auto_is_left_to_ray_to_find(monkeypatch):
    # No port to try: Ray looks up the cluster this machine belongs to itself.
    import socket

    from dqn.ray_backend import check_reachable

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    assert check_reachable("auto") is None


def test_a_ray_worker_that_dies_is_handed_to_on_crash(local_ray):
    # os._exit kills the worker process itself: Ray retries the task, then reports the death.
    from dqn.ray_backend import run_ray

    def die(code):
        os._exit(code)

    [(name, result)] = list(run_ray(die, [("dies", 9)], 1, on_crash=lambda why: ("died", why)))
    assert name == "dies" and result[0] == "died" and result[1]


def test_a_ray_tasks_warning_prints_as_the_commands_one_line(local_ray, capfd):
    """A task's warning (a study's resume falling back to an older checkpoint) was lost: Ray's
    forwarding of its workers' output is off. It prints as the local backend's workers' do."""
    import warnings

    from dqn.command_line import one_line_warnings
    from dqn.ray_backend import run_ray

    def warns(text):
        warnings.warn(text, stacklevel=1)
        warnings.warn(text, stacklevel=1)  # said once
        return "done"

    with one_line_warnings("dqn-compare"):
        got = list(run_ray(warns, [("a", "a task's word"), ("b", "a task's word")], 1))
    assert sorted(got) == [("a", "done"), ("b", "done")]
    said = capfd.readouterr().err.splitlines()
    assert said.count("dqn-compare: warning: a task's word") == 1, said


@pytest.mark.parametrize("users", [None, "5"])
def test_a_local_ray_that_dqn_starts_runs_the_tasks_at_this_process_priority(monkeypatch, users):
    """Unless the user set RAY_worker_niceness: then Ray adds their value (an increment, as
    nice(2) takes it: a worker of a process at niceness 3 runs at 3 + 5)."""
    ray = pytest.importorskip("ray", reason="Ray not installed (the 'ray' extra)")
    from dqn.ray_backend import run_ray

    if users is None:
        monkeypatch.delenv("RAY_worker_niceness", raising=False)
    else:
        monkeypatch.setenv("RAY_worker_niceness", users)
    assert not ray.is_initialized()  # so run_ray starts its own, and shuts it down after

    def niceness():
        return os.nice(0)

    expected = os.nice(0) + int(users or 0)
    assert list(run_ray(niceness, [("nice",)], 1)) == [("nice", expected)]
    assert not ray.is_initialized() and os.environ.get("RAY_worker_niceness") == users


def test_a_ray_that_dqn_starts_leaves_this_processs_signals_and_environment_as_they_were():
    """ray.init sets its own SIGTERM handler (SystemExit) and PYTHONBREAKPOINT (Ray's debugger)
    and ray.shutdown leaves them: a program that ran a study from Python kept them."""
    import signal

    ray = pytest.importorskip("ray", reason="Ray not installed (the 'ray' extra)")
    from dqn.ray_backend import run_ray

    assert not ray.is_initialized()  # so run_ray starts its own, and shuts it down after
    environ, handler = dict(os.environ), signal.getsignal(signal.SIGTERM)

    def pid():
        return os.getpid()

    assert list(run_ray(pid, [("pid",)], 1))[0][1] != os.getpid()  # a Ray worker ran it
    assert signal.getsignal(signal.SIGTERM) is handler
    assert dict(os.environ) == environ


@pytest.mark.parametrize("ray_address", [None, "10.0.0.1:6379"])
def test_a_ray_address_in_the_environment_is_a_cluster_not_a_local_ray_of_workers_cpus(
    monkeypatch, ray_address
):
    # Given no address, ray.init connects to RAY_ADDRESS: that cluster's CPUs are its own, and
    # only a Ray that dqn starts itself is given `workers` CPUs, as address "local" (without
    # it, ray.init joined a cluster `ray start` left running and refused num_cpus there).
    ray = fake_ray(monkeypatch)
    from dqn.ray_backend import run_ray

    if ray_address is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", ray_address)
    asked = []

    def init(address=None, **options):
        asked.append((address, options.get("num_cpus")))
        raise RuntimeError("not started in this test")

    ray.init = init
    with pytest.raises(RuntimeError, match="not started"):
        list(run_ray(print, [("job",)], 3))
    assert asked == [("local", 3) if ray_address is None else (None, None)]


def fake_ray(monkeypatch) -> types.SimpleNamespace:
    """A stand-in ``ray`` module, not started: these tests run where Ray is not installed."""
    ray = types.SimpleNamespace(is_initialized=lambda: False, shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", ray)
    return ray


def test_a_ray_that_cannot_be_reached_is_one_line_naming_ray_not_a_folder(monkeypatch):
    # ray.init's ConnectionError is an OSError, which dqn-compare reported as "cannot write to
    # OUT: Could not find any running Ray instance".
    from dqn.errors import DQNError
    from dqn.ray_backend import run_ray

    def init(address=None, **options):
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify ...")

    fake_ray(monkeypatch).init = init
    refused = "^cannot connect to the Ray cluster at auto: Could not find any running Ray instance"
    with pytest.raises(DQNError, match=refused) as error:
        list(run_ray(print, [("job",)], 1, address="auto"))
    assert not isinstance(error.value, OSError)


def test_the_missing_ray_line_names_the_extras_own_pin():
    # From outside dqn's checkout, pip install -e ".[ray]" fails: the line gives the pin too.
    import re
    from pathlib import Path

    from dqn.ray_backend import RAY_MISSING

    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    [pin] = re.findall(r'^ray = \["([^"]+)"\]$', pyproject, re.M)  # (tomllib: Python 3.11+)
    assert f'pip install "{pin}"' in RAY_MISSING
