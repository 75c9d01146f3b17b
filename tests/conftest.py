import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Quiet TensorFlow's C++ start-up logs in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    # In-process runs train as a fresh process would: TensorFlow's thread pools are fixed by
    # its first operation, so set them (num_threads 1, the default) before any test runs one.
    from dqn.runtime import configure_tensorflow

    configure_tensorflow(1)


def run_script(name: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``scripts/<name>`` run as a user runs it, in a fresh Python: argparse's usage lines and a
    traceback would show only there."""
    script = ROOT / "scripts" / name
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def register_once(env_id: str, entry_point, **kwargs) -> str:
    """``env_id`` registered with gymnasium unless it already is (a test module may be imported
    twice, and tests share one registry); the id, for use in a config."""
    import gymnasium as gym

    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point, **kwargs)
    return env_id


def refusal(done: subprocess.CompletedProcess) -> str:
    """The one stderr line of a process that refused its input: exit 2, nothing on stdout."""
    assert done.returncode == 2 and done.stdout == "", done.stderr
    [line] = done.stderr.splitlines()
    return line


# A run small enough to train in-process in a few seconds, with several checkpoints.
TINY_RUN = dict(
    total_env_steps=600,
    learning_starts_env_steps=100,
    train_every_env_steps=4,
    gradient_steps_per_train=2,
    hidden_sizes=(16,),
    batch_size=32,
    buffer_size=1000,
    eval_every_env_steps=100,
    eval_episodes=1,
    checkpoint_every_env_steps=200,
    keep_checkpoints=5,
    target_update_every_grad_steps=50,
    jit_compile=False,
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished CartPole run (checkpoints at 200, 400, 600); copy it before changing it."""
    from dqn import DQNConfig, train

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    train(DQNConfig(**TINY_RUN), run_dir=run_dir, progress=False, log_tensorboard=False)
    return run_dir


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path):
    """A private copy of ``tiny_run`` to damage or resume."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


# The files that take longest, longest first (from `pytest --durations=0` on a 2-core machine,
# the fifth of docs/install.md). `make test` runs files whole on two workers, handing out the
# next file as a worker frees up; a long file handed out last leaves the other worker idle for
# its length, so these go first (with `--no-loadscope-reorder`: xdist would otherwise order files
# by their number of tests). Only an order: a file missing from the list runs after these, in
# collection order.
LONGEST_FILES_FIRST = (
    "test_learning.py",  # 234 s summed over its tests when they trained 8 runs (6 now)
    "test_compare_interrupt.py",  # 180 s
    "test_compare_bad_input.py",  # 132 s
    "test_runtime.py",  # 116 s
    "test_population.py",  # 112 s
    "test_tf_population.py",  # 76 s
    "test_compare.py",  # 70 s
    "test_ray_backend.py",  # 66 s
    "test_reliability.py",  # 65 s
    "test_bench.py",  # 46 s
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def package_folder(kind: str, root: Path) -> Path:
    """A folder of ``kind`` ("run", "population" or "study's runs") made under ``root`` with
    only the files that mark it as the package's (``dqn.agent_files.folder_kind``): where a new
    run must not be written."""
    if kind == "study's runs":
        folder = root / "study" / "runs"
        (folder / "huber-seed0" / "run").mkdir(parents=True)
        return folder
    folder = root / "made"
    folder.mkdir()
    marks = {"run": ["config.yaml", "metrics.csv"], "population": ["population.json"]}[kind]
    for name in marks:
        (folder / name).write_text("{}\n")
    return folder


def count_closes(monkeypatch, module, name: str) -> tuple[list, list]:
    """Patch ``module.name``, a maker of envs, so that every env it makes records its
    ``close()``: (made, closed), the envs in the order each happened."""
    made, closed = [], []
    real = getattr(module, name)

    def make(*args, **kwargs):
        env = real(*args, **kwargs)
        close = env.close

        def counted():
            closed.append(env)
            close()

        env.close = counted
        made.append(env)
        return env

    monkeypatch.setattr(module, name, make)
    return made, closed


def buffered_env() -> dict[str, str]:
    """The environment of a user's shell: a pipe's stdout is block-buffered there. With
    PYTHONUNBUFFERED set (CI runners often set it) every write reaches the pipe at once, and a
    gone reader's error at the interpreter's final flush never showed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
