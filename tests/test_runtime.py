"""Thread settings: TensorFlow's pools can only be set before it runs. When TensorFlow ran first,
the default network's learner moves to a fresh process and trains exactly as the CLI does; a
network dqn cannot rebuild there stays in place, and dqn says so, once."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dqn import DQNConfig, runtime
from dqn.learner_process import LearnerProcessError, ProcessLearner

TF_FIRST = "import tensorflow as tf\n(tf.constant([[1.0]]) @ tf.constant([[2.0]])).numpy()\n"

AGENTS = (
    "import warnings, json\n"
    "{before}"
    "import gymnasium as gym, keras\n"
    "from dqn import DQNConfig\n"
    "from dqn.agent import DQNAgent\n"
    "from dqn.runtime import configure_tensorflow\n"
    "env = gym.make('CartPole-v1')\n"
    "def own(obs_dim, n_actions):  # not the default MLP: tanh\n"
    "    layers = [keras.layers.Dense(256, 'tanh'), keras.layers.Dense(256, 'tanh')]\n"
    "    head = keras.layers.Dense(n_actions)\n"
    "    return keras.Sequential([keras.Input((obs_dim,)), *layers, head])\n"
    "small = DQNConfig(hidden_sizes=(64, 64), gradient_steps_per_train=1)\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    pools = configure_tensorflow(1)\n"
    "    default = DQNAgent(env.observation_space, env.action_space, DQNConfig())\n"
    "    import tempfile, pathlib\n"
    "    folder = pathlib.Path(tempfile.mkdtemp()) / 'agent'\n"
    "    loaded = DQNAgent.load(default.save(folder))\n"
    "    custom = [DQNAgent(env.observation_space, env.action_space, DQNConfig(), own)\n"
    "              for _ in range(2)]\n"
    "    short = DQNAgent(env.observation_space, env.action_space, small)\n"
    "said = [str(w.message) for w in caught if w.category.__name__ == 'ThreadsWarning']\n"
    "print(json.dumps({{'pools': pools, 'said': said,\n"
    "    'learners': [type(a.learner).__name__ for a in (default, loaded, *custom, short)]}}))\n"
)


def run_python(code: str, env: dict | None = None) -> str:
    env = {**os.environ, **env} if env else None
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def agents_when(before: str) -> dict:
    return json.loads(run_python(AGENTS.format(before=before)))


def test_a_fresh_process_sets_the_threads_and_learns_in_place_without_a_warning():
    got = agents_when("")
    assert got["pools"] is True
    assert got["said"] == []
    assert got["learners"] == ["TFLearner"] * 5


def test_tensorflow_running_first_moves_the_default_learner_out_and_warns_once_for_the_rest():
    got = agents_when(TF_FIRST)
    assert got["pools"] is False
    # The default MLP (built, or loaded from a run that used it) is rebuilt in a fresh process;
    # a network of the caller's cannot be; one-step bursts of [64, 64] are not worth a process.
    assert got["learners"] == ["ProcessLearner", "ProcessLearner", "TFLearner", "TFLearner"] + [
        "TFLearner"
    ]
    assert len(got["said"]) == 1, got["said"]  # once, though two agents fell back
    assert "TensorFlow was already running" in got["said"][0]
    assert "configure_tensorflow(1) before your first TensorFlow operation" in got["said"][0]


TRAIN = (
    "{before}"
    "import sys\n"
    "from dqn import DQNConfig, train\n"
    "config = DQNConfig(total_env_steps=1200, learning_starts_env_steps=200,\n"
    "    train_every_env_steps=32, gradient_steps_per_train=32, hidden_sizes=(256, 256),\n"
    "    buffer_size=2000, eval_every_env_steps=400, eval_episodes=2, final_eval_episodes=2,\n"
    "    checkpoint_every_env_steps=600, seed=5)\n"
    "result = train(config, run_dir=sys.argv[1], progress=False, log_tensorboard=False)\n"
    "print(type(result.agent.learner).__name__, result.agent.learner.__dict__.get('_conn'))\n"
    "# A run stopped by the divergence guard (|Q| > 1e-6 at the first update) ends its learner\n"
    "# process too, though the exception's traceback still holds the agent.\n"
    "import traceback\n"
    "from dqn.errors import DivergenceError\n"
    "try:\n"
    "    train(config.replace(max_abs_q=1e-6), run_dir=sys.argv[1] + '-diverged',\n"
    "        progress=False, log_tensorboard=False)\n"
    "except DivergenceError as exc:\n"
    "    run = [f for f, _ in traceback.walk_tb(exc.__traceback__) if f.f_code.co_name == '_run']\n"
    "    learner = run[0].f_locals['agent'].learner\n"
    "    print(type(learner).__name__, learner.__dict__.get('_conn'))\n"
)


def test_training_after_tensorflow_ran_writes_the_same_bytes_as_a_fresh_process(tmp_path):
    """The point of the learner process: same program, same threads, same metrics.csv."""
    out = {}
    for name, before in (("fresh", ""), ("tf_first", TF_FIRST)):
        code = TRAIN.format(before=before)
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[name] = proc.stdout.strip().splitlines()[-2:]
    assert out["fresh"] == ["TFLearner None"] * 2
    # Trained there, and stopped after the run, whether it finished or diverged.
    assert out["tf_first"] == ["ProcessLearner None"] * 2
    fresh = (tmp_path / "fresh" / "metrics.csv").read_bytes()
    assert fresh.count(b"\n") == 4  # a row per evaluation
    assert (tmp_path / "tf_first" / "metrics.csv").read_bytes() == fresh


def config_for_learner():
    return DQNConfig(hidden_sizes=(16, 16), batch_size=8, target_update_every_grad_steps=3)


def rows_for(rng, k=4, b=8, obs_dim=4):
    rows = rng.normal(size=(k, b, 2 * obs_dim + 3)).astype(np.float32)
    rows[..., 2 * obs_dim] = rng.integers(0, 2, size=(k, b))  # action
    rows[..., 2 * obs_dim + 2] = rng.random((k, b)) < 0.2  # terminated
    return rows


def test_the_process_learner_is_the_tf_learner_bit_for_bit_and_starts_only_to_learn():
    from dqn import losses
    from dqn.networks import FlatNetwork, build_mlp
    from dqn.tf_learner import TFLearner

    config = config_for_learner()
    net = FlatNetwork(build_mlp(4, 2, config.hidden_sizes, config.activation, config.seed))
    flat = net.read()
    here = TFLearner(net.forward, losses.get(config.loss), config, 4, flat)
    there = ProcessLearner(config, 4, 2, flat)
    # Reading and restoring state (loading, saving, evaluating) starts no process.
    there.state = there.state
    assert not there.started and there.grad_steps == 0
    np.testing.assert_array_equal(there.online, flat)
    rng = np.random.default_rng(0)
    try:
        there.start()
        assert there.started and there.grad_steps == 0
        for i in range(6):
            rows = rows_for(rng)
            assert here.burst(rows).tobytes() == there.burst(rows).tobytes(), i
            assert here.online.tobytes() == there.online.tobytes()
            if i == 2:  # take the state back, end the process; the next burst starts another
                there.stop()
                assert not there.started
        assert there.started and there.grad_steps == here.grad_steps == 24
        for a, b in zip(here.state, there.state):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        there.state = there.state._replace(grad_steps=100)  # set while the process runs
        assert there.grad_steps == 100
        moved = flat + np.float32(0.5)  # what acting reads: the weights set, not the last burst's
        there.state = there.state._replace(online=moved)
        np.testing.assert_array_equal(there.online, moved)
    finally:
        there.close()
    # State set before the start is what the started process reports (a loaded agent's count).
    again = ProcessLearner(config, 4, 2, flat)
    again.state = again.state._replace(grad_steps=5)
    try:
        again.start()
        assert again.grad_steps == 5
    finally:
        again.close()


def test_every_learner_offers_the_whole_learner_contract():
    # The loop and the agent call these on whichever learner they hold, without asking which.
    from dqn import losses
    from dqn.learner import Learner
    from dqn.networks import FlatNetwork, build_mlp
    from dqn.numpy_learner import NumpyLearner
    from dqn.tf_learner import TFLearner

    config = config_for_learner()
    net = FlatNetwork(build_mlp(4, 2, config.hidden_sizes, config.activation, config.seed))
    flat = net.read()
    learners = [
        TFLearner(net.forward, losses.get(config.loss), config, 4, flat),
        NumpyLearner(net.shapes, ["relu", "relu", "linear"], config, flat),
        ProcessLearner(config, 4, 2, flat),  # no process until start or a burst
    ]
    contract = {n for n in vars(Learner) if not n.startswith("_")} | set(Learner.__annotations__)
    assert {"burst", "state", "grad_steps", "probe_gradient", "start", "stop"} <= contract
    for learner in learners:
        missing = sorted(n for n in contract if not hasattr(learner, n))
        assert not missing, f"{type(learner).__name__} lacks {missing}"


def test_a_process_is_only_worth_it_for_long_bursts():
    from dqn.learner_process import MIN_BURST_FLOP, burst_flop, worth_a_process

    def shapes(*sizes):
        return [s for a, b in zip(sizes, sizes[1:]) for s in ((a, b), (b,))]

    default = DQNConfig.from_yaml("configs/cartpole.yaml")
    # Per step: online and target forwards, 2 * 64 * (4*256 + 256*256 + 256*2) = 8,585,216
    # each, and a backward of two forwards less the input layer's dx: 34.2 MFLOP, x 128.
    forward = 2 * 64 * 67072
    assert burst_flop(default, shapes(4, 256, 256, 2)) == 128 * (4 * forward - 2 * 64 * 4 * 256)
    assert worth_a_process(default, shapes(4, 256, 256, 2))
    one_step = DQNConfig(hidden_sizes=(64, 64), gradient_steps_per_train=1)
    small_forward = 2 * 64 * (4 * 64 + 64 * 64 + 64 * 2)
    assert burst_flop(one_step, shapes(4, 64, 64, 2)) == 4 * small_forward - 2 * 64 * 4 * 64
    assert burst_flop(one_step, shapes(4, 64, 64, 2)) < MIN_BURST_FLOP / 100
    assert not worth_a_process(one_step, shapes(4, 64, 64, 2))


def test_an_interrupt_aimed_at_the_learner_process_leaves_it_serving():
    """Ctrl-C and SIGTERM are the training process's to handle (it saves a checkpoint, which
    needs the learner's state): the learner process keeps serving until its socket closes."""
    import signal

    config = config_for_learner()
    learner = ProcessLearner(config, 4, 2, np.zeros(386, np.float32))
    try:
        learner.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            os.kill(learner._proc.pid, sig)
        learner.burst(rows_for(np.random.default_rng(2)))
        assert learner.state.grad_steps == 4
    finally:
        learner.close()
    assert learner._proc.wait(timeout=30) == 0  # ended by the closed socket, cleanly


def test_the_learner_process_is_started_with_the_configs_threads(monkeypatch):
    # Its pools are what it is for: the count reaches it on its command line, before TF runs.
    import subprocess as sp

    class Started(Exception):
        pass

    def popen(argv, **kwargs):
        raise Started(argv)

    monkeypatch.setattr(sp, "Popen", popen)
    learner = ProcessLearner(config_for_learner().replace(num_threads=3), 4, 2, np.zeros(386))
    with pytest.raises(Started) as started:
        learner.start()
    [argv] = started.value.args
    assert argv[1] == "-c" and "from dqn.learner_process import main" in argv[2]
    assert argv[-1] == "3"


@pytest.mark.parametrize("extra", [1, 0])
def test_import_tensorflow_quietly_sets_the_pools_it_is_asked_for(extra):
    # One more than the cores: TF's default (0, one per core) would not pass for it. As many as
    # the cores, with TF_NUM_*_THREADS=1 in the environment: left unset, TF would start its
    # pools from those (and the 0 it reports would read as "one per core").
    wanted = len(os.sched_getaffinity(0)) + extra
    code = (
        "from dqn.runtime import import_tensorflow_quietly\n"
        f"tf = import_tensorflow_quietly({wanted})\n"
        "threading = tf.config.threading\n"
        "print(threading.get_intra_op_parallelism_threads(),"
        " threading.get_inter_op_parallelism_threads())\n"
    )
    env = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"} if extra == 0 else {}
    assert run_python(code, env) == f"{wanted} {wanted}"


def test_pools_tensorflow_started_from_the_environment_are_read_as_theirs():
    # TF ran first, its pools unset (0) and so sized from TF_NUM_*_THREADS=1: asking for as
    # many threads as cores was answered "yours" and for one thread "fixed otherwise".
    cores = len(os.sched_getaffinity(0))
    code = (
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"
        "from dqn.runtime import configure_tensorflow\n"
        f"print(configure_tensorflow(1), configure_tensorflow({cores}))\n"
    )
    env = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    assert run_python(code, env) == ("True False" if cores > 1 else "True True")


def test_the_learner_process_imports_no_module_of_the_users_current_folder(tmp_path, monkeypatch):
    # Started with -m, it put the current folder first on its sys.path: a numpy.py there was
    # imported for numpy, and the process died ("the learner process ended unexpectedly").
    (tmp_path / "numpy.py").write_text("raise ImportError('the current folder holds numpy.py')\n")
    monkeypatch.chdir(tmp_path)
    learner = ProcessLearner(config_for_learner(), 4, 2, np.zeros(386, np.float32))
    try:
        learner.start()
        learner.burst(rows_for(np.random.default_rng(1)))
        assert learner.grad_steps > 0
    finally:
        learner.close()


def test_a_dead_learner_process_is_one_clear_error():
    config = config_for_learner()
    learner = ProcessLearner(config, 4, 2, np.zeros(386, np.float32))  # [16, 16]
    learner.start()
    learner._proc.kill()
    learner._proc.wait()
    with pytest.raises(LearnerProcessError, match="ended unexpectedly"):
        learner.burst(rows_for(np.random.default_rng(1)))
    learner.close()
    assert not learner.started and learner._proc.poll() is not None  # nothing left behind


def test_a_learner_process_that_fails_to_start_leaves_its_state_here():
    # A parameter count [16, 16] cannot take for obs_dim -1: the process's init raises.
    online = np.arange(386, dtype=np.float32)
    learner = ProcessLearner(config_for_learner(), -1, 2, online)
    with pytest.raises(LearnerProcessError, match="the learner process failed"):
        learner.start()
    assert not learner.started
    np.testing.assert_array_equal(learner.state.online, online)  # read here, not asked of it


def test_any_error_in_the_learner_process_comes_back_as_its_failure_not_a_death():
    learner = ProcessLearner(config_for_learner(), 4, 2, np.zeros(386, np.float32))
    try:
        with pytest.raises(LearnerProcessError, match="the learner process failed: TypeError"):
            learner.probe_gradient(None)  # not a batch: a TypeError there, not a ValueError
        assert learner.state.grad_steps == 0  # and it still serves
    finally:
        learner.close()


# ---------------------------------------------------------------- XLA's schedule (runtime.py)
SCHEDULE = (
    "import hashlib, json, os, resource\n"
    "import numpy as np\n"
    "from dqn.runtime import configure_tensorflow\n"
    "configure_tensorflow(1)\n"
    "flags = os.environ.get('XLA_FLAGS')\n"
    "from benchmarks.population_scaling import random_population\n"
    "pop, rows, active = random_population(2, 64)  # (b)'s network: [64, 64], batch 64\n"
    "digest = hashlib.sha256()\n"
    "for _ in range(3):\n"
    "    digest.update(pop.burst(rows[:, :8], active).tobytes())\n"
    "pop.burst(rows[:, :1], active)  # compiles the one-step burst\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw\n"
    "for i in range(100):\n"
    "    digest.update(pop.burst(rows[:, i:i + 1], active).tobytes())\n"
    "switches = (resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before) / 100\n"
    "for m in range(2):\n"
    "    for part in pop.member_state(m):\n"
    "        digest.update(np.asarray(part).tobytes())\n"
    "print(json.dumps({'flags': flags, 'digest': digest.hexdigest(), 'switches': switches}))\n"
)


def schedule_run(xla_flags: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, "-c", SCHEDULE], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_thread_runs_xla_programs_on_the_calling_thread_with_the_same_results():
    import tensorflow as tf

    from benchmarks.xla_schedule import CONCURRENT as concurrent
    from dqn.runtime import SEQUENTIAL_XLA_FLAG, SEQUENTIAL_XLA_SINCE, tf_version

    if tf_version(tf.__version__) < SEQUENTIAL_XLA_SINCE:
        pytest.skip(f"TensorFlow {tf.__version__} has no {SEQUENTIAL_XLA_FLAG}")
    ours = schedule_run(None)
    assert ours["flags"] is None  # set for XLA's first compilation only, then taken back
    # No hand-off to TF's pool: a call blocks on nothing (XLA's concurrent schedule made two
    # voluntary context switches per one-step call here).
    assert ours["switches"] < 0.5, ours
    theirs = schedule_run(concurrent)
    assert theirs["flags"] == concurrent  # the caller's own setting of the flag stands
    assert theirs["digest"] == ours["digest"]  # the schedule changes speed, not results


def test_the_xla_flag_is_offered_only_to_a_tensorflow_that_knows_it(monkeypatch):
    """XLA aborts the process on a flag it does not know; the flag is only in XLA_FLAGS for
    the compilation that reads it."""
    from types import SimpleNamespace

    from dqn import runtime

    seen = []

    def fake_tf(version):
        def function(fn, jit_compile, autograph):
            seen.append(os.environ.get("XLA_FLAGS"))
            return lambda x: x

        return SimpleNamespace(__version__=version, function=function, constant=lambda x: x)

    for version, flags in (("2.17.1", None), ("2.18.0", None), ("2.21.0", "--xla_other=1")):
        monkeypatch.setattr(runtime, "_XLA_CONFIGURED", False)
        if flags is None:
            monkeypatch.delenv("XLA_FLAGS", raising=False)
        else:
            monkeypatch.setenv("XLA_FLAGS", flags)
        seen.clear()
        runtime.configure_xla(fake_tf(version))
        assert os.environ.get("XLA_FLAGS") == flags  # as it was
        if version == "2.17.1":
            assert seen == []
        else:
            expected = runtime.SEQUENTIAL_XLA_FLAG
            assert seen == [expected if flags is None else f"{flags} {expected}"]
        runtime.configure_xla(fake_tf(version))  # once per process
        assert len(seen) == (version != "2.17.1")
    assert runtime.tf_version("2.19.0-rc1") == (2, 19)
    assert runtime.tf_version("nightly") == (0, 0)


def test_an_empty_xla_flags_is_put_back_empty_not_removed(monkeypatch):
    """XLA_FLAGS="" is the caller's setting too: afterwards it is "" again, not unset."""
    from types import SimpleNamespace

    seen = []

    def function(fn, jit_compile, autograph):
        seen.append(os.environ.get("XLA_FLAGS"))
        return lambda x: x

    tf = SimpleNamespace(__version__="2.21.0", function=function, constant=lambda x: x)
    monkeypatch.setattr(runtime, "_XLA_CONFIGURED", False)
    monkeypatch.setenv("XLA_FLAGS", "")
    runtime.configure_xla(tf)
    assert seen == [runtime.SEQUENTIAL_XLA_FLAG]
    assert os.environ.get("XLA_FLAGS") == ""


def test_a_callers_own_setting_of_the_xla_schedule_stands(monkeypatch):
    """XLA_FLAGS that already choose the schedule (either way) are left alone: no compilation
    with the flag added, and the setting as the caller made it."""
    from types import SimpleNamespace

    seen = []

    def function(fn, jit_compile, autograph):
        seen.append(os.environ.get("XLA_FLAGS"))
        return lambda x: x

    tf = SimpleNamespace(__version__="2.21.0", function=function, constant=lambda x: x)
    theirs = f"--xla_other=1 --{runtime.XLA_SCHEDULER}=true"
    monkeypatch.setattr(runtime, "_XLA_CONFIGURED", False)
    monkeypatch.setenv("XLA_FLAGS", theirs)
    runtime.configure_xla(tf)
    assert seen == []
    assert os.environ["XLA_FLAGS"] == theirs


@pytest.mark.parametrize("intra, said", [(0, "with one thread per core"), (3, "with 3 threads")])
def test_the_threads_warning_says_what_tensorflow_runs_with(monkeypatch, intra, said):
    import tensorflow as tf

    from dqn.errors import ThreadsWarning

    monkeypatch.setattr(runtime, "_WARNED_THREADS", False)
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: intra)
    with pytest.warns(ThreadsWarning) as caught:
        runtime.warn_threads_fixed(2, "its learner")
    assert f"TensorFlow was already running ({said}) when dqn asked for num_threads=2" in str(
        caught[0].message
    )


def _numpys_blas() -> str:
    config = np.show_config(mode="dicts")  # numpy >= 1.26
    return config["Build Dependencies"]["blas"]["name"]


@pytest.mark.skipif("openblas" not in _numpys_blas(), reason="numpy is not built on OpenBLAS")
def test_the_blas_cap_reaches_the_blas_numpy_runs_on():
    """configure_blas(1) leaves numpy's OpenBLAS at one thread. threadpoolctl before 3.5 did not
    find the scipy-openblas library numpy 2 ships, and the cap silently did nothing."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):  # puts back the counts it found, on leaving
        runtime.configure_blas(1)
        blas = [m for m in threadpool_info() if m["internal_api"] == "openblas"]
    assert blas, "threadpoolctl found no OpenBLAS in this process"
    assert {m["num_threads"] for m in blas} == {1}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_usable_cores_follows_the_affinity_mask_not_the_machine():
    """A process pinned to one CPU (as ``taskset -c 0`` pins it) may use one, whatever
    ``os.cpu_count()`` says; ``dqn-compare``'s default --workers is this count."""
    code = (
        "import os\n"
        "from dqn.runtime import usable_cores\n"
        "whole = usable_cores()\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(whole, usable_cores(), os.cpu_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    whole, pinned, machine = map(int, out.stdout.split())
    assert pinned == 1
    assert 1 <= whole <= len(os.sched_getaffinity(0)) <= machine


def _cgroup(folder, limit_file, limit, usage_file, usage, inactive_key, inactive):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / limit_file).write_text(f"{limit}\n")
    (folder / usage_file).write_text(f"{usage}\n")
    (folder / "memory.stat").write_text(f"anon 1\n{inactive_key} {inactive}\nactive_file 7\n")


def test_cgroup_v2_headroom_is_the_tightest_limit_minus_usage_without_inactive_cache(tmp_path):
    """A container limit shows in memory.max, not in /proc/meminfo: 4 GB allowed, 1 GB charged
    of which 0.3 GB inactive file cache leaves 3.3 GB; a parent allowing 2 GB with 1.5 GB
    charged leaves 0.5 GB, and the tighter one counts."""
    membership = tmp_path / "cgroup"
    membership.write_text("0::/user.slice/app\n")
    app = tmp_path / "user.slice" / "app"
    v2 = ("memory.max", "memory.current", "inactive_file")

    def make(folder, limit, usage, inactive):
        _cgroup(folder, v2[0], limit, v2[1], usage, v2[2], inactive)

    make(app, 4_000_000_000, 1_000_000_000, 300_000_000)
    assert runtime.cgroup_memory_headroom(tmp_path, membership) == 3_300_000_000
    make(app.parent, 2_000_000_000, 1_500_000_000, 0)
    assert runtime.cgroup_memory_headroom(tmp_path, membership) == 500_000_000
    make(app.parent, "max", 1_500_000_000, 0)  # no limit there: the app's own stands
    assert runtime.cgroup_memory_headroom(tmp_path, membership) == 3_300_000_000
    make(app, "max", 1_000_000_000, 0)
    assert runtime.cgroup_memory_headroom(tmp_path, membership) is None


def _v2_headroom(tmp_path, membership: str, limit: int, usage: int, inactive: int):
    """cgroup_memory_headroom of a v2 group /app with these files, ``membership`` the process's
    /proc/self/cgroup text."""
    (tmp_path / "cgroup").write_text(membership)
    _cgroup(
        tmp_path / "app", "memory.max", limit, "memory.current", usage, "inactive_file", inactive
    )
    return runtime.cgroup_memory_headroom(tmp_path, tmp_path / "cgroup")


def test_a_membership_line_without_a_path_is_skipped_not_an_error(tmp_path):
    """/proc/self/cgroup lines are "id:controllers:path"; one with a field missing is passed
    over and the v2 line after it still counts (4 GB - 1 GB)."""
    membership = "garbage\n3:memory\n0::/app\n"
    assert _v2_headroom(tmp_path, membership, 4_000_000_000, 1_000_000_000, 0) == 3_000_000_000


def test_a_cgroup_path_may_hold_a_colon(tmp_path):
    """Only the first two colons of "id:controllers:path" separate fields: /app:x is one
    folder (4 GB - 1 GB)."""
    (tmp_path / "cgroup").write_text("0::/app:x\n")
    v2 = ("memory.max", 4_000_000_000, "memory.current", 1_000_000_000, "inactive_file", 0)
    _cgroup(tmp_path / "app:x", *v2)
    assert runtime.cgroup_memory_headroom(tmp_path, tmp_path / "cgroup") == 3_000_000_000


def test_inactive_cache_above_the_usage_counts_as_no_usage_not_extra_room(tmp_path):
    """Files read at different moments may say 0.5 GB inactive of 0.3 GB charged: the headroom
    is then the whole limit, never more than it."""
    headroom = _v2_headroom(tmp_path, "0::/app\n", 1_000_000_000, 300_000_000, 500_000_000)
    assert headroom == 1_000_000_000


def test_available_memory_is_memavailable_in_kib_lowered_to_the_cgroups_headroom(
    tmp_path, monkeypatch
):
    """/proc/meminfo counts in KiB (1024 bytes, though it writes "kB"); the cgroups' headroom
    counts when it is lower."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       4000 kB\nMemFree:  100 kB\nMemAvailable:   3000 kB\n")
    real_open = open
    monkeypatch.setattr(
        runtime,
        "open",
        lambda path, *a, **k: real_open(meminfo if path == "/proc/meminfo" else path, *a, **k),
        raising=False,  # the module's own name `open`, looked up before the builtin
    )
    monkeypatch.setattr(runtime, "cgroup_memory_headroom", lambda: None)
    assert runtime.available_memory_bytes() == 3000 * 1024
    monkeypatch.setattr(runtime, "cgroup_memory_headroom", lambda: 1_000_000)
    assert runtime.available_memory_bytes() == 1_000_000


def test_cgroup_v1_headroom_and_its_no_limit_value(tmp_path):
    """v1 keeps the memory controller in its own tree; 'no limit' is the largest page-aligned
    int64, and a container that sees the host's path finds its limit at the mount's root."""
    membership = tmp_path / "cgroup"
    membership.write_text("5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")
    v1 = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")

    def make(folder, limit, usage, inactive):
        _cgroup(folder, v1[0], limit, v1[1], usage, v1[2], inactive)

    make(tmp_path / "memory", 9223372036854771712, 5_000_000_000, 0)
    assert runtime.cgroup_memory_headroom(tmp_path, membership) is None
    make(tmp_path / "memory", 1_000_000_000, 600_000_000, 100_000_000)  # /docker/abc absent
    assert runtime.cgroup_memory_headroom(tmp_path, membership) == 500_000_000
    make(tmp_path / "memory" / "docker" / "abc", 800_000_000, 900_000_000, 0)  # over: none left
    assert runtime.cgroup_memory_headroom(tmp_path, membership) == 0
    assert runtime.cgroup_memory_headroom(tmp_path, tmp_path / "absent") is None


def test_a_population_over_its_containers_memory_limit_is_refused_before_anything(
    monkeypatch, tmp_path
):
    """The machine may have plenty; a cgroup limit of 5 MB still refuses 2 members whose
    replay rings alone need 8.8 MB (100,000 transitions of 11 float32 each), with the one-line
    error, and writes nothing."""
    from dqn.errors import ConfigError
    from dqn.population import train_population

    monkeypatch.setattr(runtime, "cgroup_memory_headroom", lambda *a, **k: 5_000_000)
    assert runtime.available_memory_bytes() == 5_000_000
    out = tmp_path / "pop"
    with pytest.raises(ConfigError, match=r"need [\d,]+ bytes, but 5,000,000 bytes of memory"):
        train_population(DQNConfig(), [({}, 0), ({}, 1)], out_dir=out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("where", ["KERAS_BACKEND", "keras.json"])
def test_a_keras_set_to_another_backend_runs_dqn_on_tensorflow(tmp_path, where):
    # Set for a user's other projects, jax (not installed here) made every dqn command fail in
    # Keras's import with "No module named 'jax'".
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    env = {"KERAS_BACKEND": "jax"} if where == "KERAS_BACKEND" else {"KERAS_HOME": str(tmp_path)}
    env = {**{k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}, **env}
    code = (
        "import gymnasium as gym\n"
        "from dqn import DQNAgent, DQNConfig\n"
        "box, two = gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Discrete(2)\n"
        "agent = DQNAgent(box, two, DQNConfig(hidden_sizes=(8,)))\n"
        "import keras\n"
        "print(keras.backend.backend(), agent.act(box.sample(), 0.0) in (0, 1))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["tensorflow", "True"]


def test_a_keras_set_to_tensorflow_or_not_set_leaves_the_environment_as_it_was(tmp_path):
    # KERAS_BACKEND is set only where Keras would start on another backend: a user's child
    # processes otherwise see the environment they had.
    code = "import os, dqn\nprint(os.environ.get('KERAS_BACKEND'))\n"
    for folder in ("unset", "tensorflow"):
        (tmp_path / folder).mkdir()
        if folder == "tensorflow":
            (tmp_path / folder / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["KERAS_HOME"] = str(tmp_path / folder)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert proc.stdout.split() == ["None"], (folder, proc.stderr[-2000:])


def test_a_keras_imported_first_on_another_backend_is_refused_in_one_line(monkeypatch):
    import types

    from dqn.errors import ConfigError

    on_jax = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", on_jax)
    with pytest.raises(ConfigError, match="imported Keras on 'jax' first .* import dqn before"):
        runtime.configure_tensorflow(1)


@pytest.mark.parametrize(
    "backend, kept",
    [
        ("nonsense", False),
        pytest.param(
            "module://matplotlib_inline.backend_inline",  # refused unless that package is here
            False,
            marks=pytest.mark.skipif(
                importlib.util.find_spec("matplotlib_inline") is not None,
                reason="matplotlib-inline is installed: matplotlib takes its backend",
            ),
        ),
        ("agg", True),
    ],
)
def test_an_mplbackend_matplotlib_refuses_is_dropped_and_one_it_takes_is_kept(backend, kept):
    # Keras imports matplotlib.pyplot as TensorFlow loads it, and matplotlib refused these at
    # its import: every command failed (a Jupyter kernel's `!dqn-train` has a module:// one,
    # matplotlib_inline's, which dqn's environment may lack). One of matplotlib's own names
    # is taken without importing matplotlib at `import dqn`.
    code = (
        "import os, sys\n"
        "import dqn\n"
        "early = 'matplotlib' in sys.modules\n"
        "from dqn.agent import DQNAgent\n"
        "import matplotlib\n"
        "print(os.environ.get('MPLBACKEND'), matplotlib.get_backend(), early)\n"
    )
    env = {**os.environ, "MPLBACKEND": backend}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    said, chosen, early = proc.stdout.split()  # dropped: matplotlib chooses (agg, no display)
    assert (said, chosen, early) == (backend, backend, "False") if kept else said == "None"
