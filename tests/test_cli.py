"""The command line: bad input is one line on stderr, exit code 2, no traceback, no files."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(module_main, *args, cwd):
    code = f"import sys; from dqn.cli import {module_main}; sys.exit({module_main}(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--loss", "mse"], ["unknown loss 'mse'", "l2, clipped_delta, huber, clipped_grad"]),
        (["--set", "learning_rat=0.1"], ["unknown config key 'learning_rat'", "valid keys"]),
        (["--set", "gamma=1.5"], ["'gamma' must be in (0, 1]"]),
        (["--set", "batch_size=many"], ["'batch_size' must be an integer"]),
        (["--config", "no/such.yaml"], ["config file not found: no/such.yaml"]),
        (["--set", "env_id=CartPol-v1"], ["unknown env id 'CartPol-v1'", "CartPole-v1"]),
        (["--set", "env_id=Pendulum-v1"], ["Discrete action space"]),
        (["--set", "learning_starts_env_steps=100", "total_env_steps=100"], ["never train"]),
        (["--bogus"], ["unrecognized arguments: --bogus"]),
        (["--set", "gamma"], ["not of the form key=value"]),
    ],
)
def test_train_bad_input(tmp_path, args, fragments):
    proc = run("train_main", *args, "--set", f"output_dir={tmp_path / 'runs'}", cwd=tmp_path)
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / "runs").exists()  # nothing written


def test_train_refuses_a_config_that_is_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: [huber\n")
    assert_one_line_error(run("train_main", "--config", str(bad), cwd=tmp_path), "not valid YAML")


def test_evaluate_bad_input(tmp_path):
    assert_one_line_error(run("evaluate_main", "nowhere", cwd=tmp_path), "no run or checkpoint folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("evaluate_main", "empty", cwd=tmp_path), "not a complete checkpoint")


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = run(
        "train_main", "--config", str(ROOT / "configs" / "cartpole.yaml"), "--no-progress",
        "--run-dir", str(run_dir), "--set", "total_env_steps=3000", "learning_starts_env_steps=500",
        "eval_every_env_steps=1000", "hidden_sizes=[32,32]", "train_every_env_steps=4",
        "gradient_steps_per_train=1", cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "final greedy evaluation" in proc.stdout
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoint/online.keras"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").iterdir()), "no TensorBoard event file"
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + evaluations at 1000, 2000, 3000
    proc = run("evaluate_main", str(run_dir), "--episodes", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "greedy return" in proc.stdout
