"""dqn-export: the SavedModel (and TFLite model) of an agent, served by processes without dqn."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig
from dqn.export import export_policy, main
from tests.test_bad_input import assert_refused, only_latest, tree, truncate, truncated_agent

ROOT = Path(__file__).resolve().parent.parent
RTOL = ATOL = 1e-5

# Both scripts run in a fresh interpreter that cannot import dqn (a finder refuses it) and
# check at the end that it never did: only tensorflow and numpy serve the exported models.
NO_DQN = """
import sys

class NoDQN:
    def find_spec(self, name, path=None, target=None):
        if name == "dqn" or name.startswith("dqn."):
            raise ImportError("the exported model must not need dqn")

sys.meta_path.insert(0, NoDQN())
import numpy as np
import tensorflow as tf

obs_path, results_path, *models = sys.argv[1:]
obs = np.load(obs_path)
results = {}
"""

SAVED_MODEL_SCRIPT = (
    NO_DQN
    + """
for i, folder in enumerate(models):
    model = tf.saved_model.load(folder)
    assert sorted(model.signatures) == ["action", "q_values", "serving_default"]
    x = tf.constant(obs)
    results[f"q_values{i}"] = model.signatures["q_values"](obs=x)["q_values"].numpy()
    results[f"default{i}"] = model.signatures["serving_default"](obs=x)["q_values"].numpy()
    results[f"action{i}"] = model.signatures["action"](obs=x)["action"].numpy()
    # Another width is named with the shape expected (it failed inside the first matmul).
    w = obs.shape[1]
    for name in ("q_values", "action"):
        try:
            model.signatures[name](obs=tf.zeros([3, w + 1]))
        except tf.errors.InvalidArgumentError as exc:
            said = f"obs [3,{w + 1}] is not compatible with expected shape [?,{w}]"
            assert said in exc.message, exc.message
        else:
            raise AssertionError(f"{name} took an observation of another width")
assert "dqn" not in sys.modules
np.savez(results_path, **results)
"""
)

TFLITE_SCRIPT = (
    NO_DQN
    + """
for i, path in enumerate(models):
    interpreter = tf.lite.Interpreter(model_path=path)
    assert list(interpreter.get_signature_list()) == ["q_values"]
    results[f"q_values{i}"] = interpreter.get_signature_runner("q_values")(obs=obs)["q_values"]
assert "dqn" not in sys.modules
np.savez(results_path, **results)
"""
)


def tflite_missing() -> str | None:
    """Why this TensorFlow build cannot convert to or run TFLite, or None if it can."""
    import tensorflow as tf

    lite = getattr(tf, "lite", None)
    for name in ("TFLiteConverter", "Interpreter"):
        if getattr(lite, name, None) is None:
            return f"this TensorFlow build has no tf.lite.{name}"
    return None


def untrained_agent(folder: Path) -> Path:
    """An agent whose greedy actions are spread over 3 actions (the tiny run's are not)."""
    from dqn.agent import DQNAgent

    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    config = DQNConfig(hidden_sizes=(32, 32), activation="tanh", seed=1)
    DQNAgent(space, gym.spaces.Discrete(3), config).save(folder)
    return folder


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The tiny run exported by a ``python -m dqn.export`` process, an untrained 3-action agent
    exported in-process into an existing empty folder, both again through ``export_policy``
    (the run by its folder, the agent as a DQNAgent), 1,000 observations and what
    ``DQNAgent.load(...).q_values`` says about them."""
    from dqn.agent import DQNAgent

    tmp = tmp_path_factory.mktemp("export")
    tflite = ["--tflite"] if tflite_missing() is None else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(
        [sys.executable, "-m", "dqn.export", str(tiny_run), "--out", "run_model", *tflite],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    agent = untrained_agent(tmp / "agent")
    (tmp / "agent_model").mkdir()
    assert main([str(agent), "--out", str(tmp / "agent_model"), *tflite]) == 0
    api_run = export_policy(str(tiny_run), tmp / "api_run_model", tflite=bool(tflite))
    api_agent = export_policy(DQNAgent.load(agent), tmp / "api_agent_model", tflite=bool(tflite))
    assert (api_run, api_agent) == (tmp / "api_run_model", tmp / "api_agent_model")
    obs = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    # A sensor's NaN or inf: NaN Q-values and action 0 (a relu network's fused kernel gave 0
    # for a NaN, and the SavedModel a plausible action); agent.q_values refuses them.
    bad = [(0, 0, np.nan), (1, 2, np.inf), (2, 3, -np.inf), (3, slice(None), np.nan)]
    for row, col, value in bad:
        obs[row, col] = value
    np.save(tmp / "obs.npy", obs)
    expected = [DQNAgent.load(path).q_values(np.nan_to_num(obs)) for path in (tiny_run, agent)]
    for q in expected:
        q[: len(bad)] = np.nan  # whose argmax, numpy's first NaN, is action 0
    return {
        "tmp": tmp,
        "process": process,
        "models": [tmp / "run_model", tmp / "agent_model", api_run, api_agent],
        "expected": expected * 2,
    }


def serve(script: str, exported, models: list[Path]) -> dict[str, np.ndarray]:
    """Run ``script`` in a fresh Python (no dqn) on the exported models; its results."""
    tmp = exported["tmp"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", script, "obs.npy", "results.npz", *map(str, models)],
        cwd=tmp,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp / "results.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.slow
def test_the_export_process_prints_one_line_and_writes_a_savedmodel(exported):
    proc = exported["process"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # TensorFlow's and the converter's start-up logs are muted
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    for fragment in ("run_model", "q_values (serving_default)", "action int64", "step-000000600"):
        assert fragment in lines[0], lines[0]
    what = "SavedModel and model.tflite" if tflite_missing() is None else "SavedModel"
    assert lines[0].startswith(f"dqn-export: wrote {what} of "), lines[0]  # both, if both
    out = exported["tmp"] / "run_model"
    assert (out / "saved_model.pb").is_file() and (out / "variables").is_dir()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_the_savedmodel_serves_the_agents_q_values_and_actions_without_dqn(exported):
    results = serve(SAVED_MODEL_SCRIPT, exported, exported["models"])
    for i, expected in enumerate(exported["expected"]):
        q, action = results[f"q_values{i}"], results[f"action{i}"]
        assert q.dtype == np.float32 and q.shape == expected.shape
        np.testing.assert_allclose(q, expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(results[f"default{i}"], q)
        assert action.dtype == np.int64 and action.shape == (1000,)
        np.testing.assert_array_equal(action, expected.argmax(axis=1))
    # The untrained agent's actions are spread: the action signature is not constant.
    assert len(np.unique(results["action1"])) == 3
    assert len(np.unique(results["action3"])) == 3


@pytest.mark.slow
def test_the_tflite_model_serves_the_agents_q_values_without_dqn(exported):
    reason = tflite_missing()
    if reason is not None:
        pytest.skip(f"--tflite not tested: {reason}")
    models = [folder / "model.tflite" for folder in exported["models"]]
    results = serve(TFLITE_SCRIPT, exported, models)
    for i, expected in enumerate(exported["expected"]):
        q = results[f"q_values{i}"]
        assert q.dtype == np.float32 and q.shape == expected.shape
        np.testing.assert_allclose(q, expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(q.argmax(axis=1), expected.argmax(axis=1))


# ---------------------------------------------------------------------- bad input
def not_empty(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine\n")
    return "out"


def a_file(tmp):
    (tmp / "out").write_text("not a folder\n")
    return "out"


def under_a_file(tmp):
    # Tests may run as root, where chmod does not stop writes; a path under a file always fails.
    (tmp / "afile").write_text("not a folder\n")
    return "afile/sub/out"


def in_checkpoints(tmp):
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    (tmp / "run" / "config.yaml").write_text("seed: 0\n")  # a run's: its resume would look there
    (tmp / "run" / "metrics.csv").write_text("env_step\n")
    return "run/checkpoints/step-000999999"


def in_a_checkpoint(tmp):
    (tmp / "step-000000600" / "agent").mkdir(parents=True)
    (tmp / "step-000000600" / "manifest.json").write_text("{}")  # marks a checkpoint
    return "step-000000600/agent/savedmodel"


OUT_CASES = {
    "non-empty out folder": (not_empty, ["out already exists and is not empty"]),
    "out among checkpoints": (in_checkpoints, ["checkpoints, which a file written there would"]),
    "out inside a checkpoint": (in_a_checkpoint, ["step-000000600, which a file written there"]),
    # Bytes that are not UTF-8 (Python keeps them as surrogates): TensorFlow's SavedModel
    # writer failed on them with a traceback once the export was under way.
    "out not UTF-8": (lambda tmp: "m\udcff", ["--out", "is not a UTF-8 name"]),
    "out is a file": (a_file, ["out exists and is not a folder"]),
    "out under a file": (under_a_file, ["cannot write --out", "afile is not a folder"]),
}


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_export_refuses_an_out_it_cannot_create(case, tiny_run, tmp_path, capsys):
    make, fragments = OUT_CASES[case]
    out = tmp_path / make(tmp_path)
    assert_refused(main, [tiny_run, "--out", out], fragments, capsys, tmp_path)


def test_export_policy_refuses_what_it_cannot_export_and_writes_nothing(tiny_run, tmp_path):
    from dqn.errors import DQNError, InputError, OutputError

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine\n")
    cases = [  # OutputError, as train and DQNAgent.save say a folder they cannot write
        ((tiny_run, tmp_path / "taken"), OutputError, "out .*taken already exists and is not"),
        ((tmp_path / "nowhere", tmp_path / "out"), DQNError, "no run, checkpoint or agent"),
        ((42, tmp_path / "out"), InputError, "takes a DQNAgent or the path .* got int"),
        ((tiny_run, None), InputError, "out is a folder's path .* got NoneType"),
        ((tiny_run, 7), InputError, "out is a folder's path .* got int"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message) as refused:
            export_policy(*args)
        assert "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_export_refuses_a_missing_run_folder(tmp_path, capsys):
    args = [tmp_path / "nowhere", "--out", tmp_path / "out"]
    assert_refused(main, args, ["no run, checkpoint or agent folder"], capsys, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_run_whose_only_checkpoint_is_corrupt(tiny_run_copy, capsys):
    truncate(only_latest(tiny_run_copy) / "agent" / "online.keras")
    args = [tiny_run_copy, "--out", tiny_run_copy.parent / "out"]
    fragments = ["no intact checkpoint", "agent/online.keras does not match its checksum"]
    assert_refused(main, args, fragments, capsys, tiny_run_copy.parent)


def test_export_refuses_a_corrupt_agent_and_removes_what_it_started(tmp_path, capsys):
    # Found only when Keras reads the weights, after the temporary folder and the missing
    # parents of --out were made: all of it is removed again.
    agent = truncated_agent(tmp_path)
    args = [agent, "--out", tmp_path / "new" / "deeper" / "out"]
    assert_refused(main, args, ["corrupt saved agent"], capsys, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_exporting_writes_nothing_and_exits_128_plus_it(
    sig, code, tiny_run, tmp_path, monkeypatch, capsys
):
    """`timeout 5 dqn-export ...` (SIGTERM) used to kill it at once, leaving a hidden
    .out.*.tmp folder beside --out; now it is removed, as for Ctrl-C, with one line."""
    import time

    from dqn import export

    ran = []

    def signalled_while_writing(path, agent_dir, folder, tflite):
        (folder / "saved_model.pb").write_bytes(b"half")
        os.kill(os.getpid(), sig)
        time.sleep(0.1)  # raised here, inside TensorFlow's calls, it was lost or garbled
        ran.append("to its end")

    monkeypatch.setattr(export, "_write", signalled_while_writing)
    # Ctrl-C as Python handles it in a terminal: a suite started in the background of a
    # script inherits SIGINT ignored, and the export then (rightly) ignores it too.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main([str(tiny_run), "--out", str(tmp_path / "new" / "out")]) == code
    finally:
        signal.signal(signal.SIGINT, previous)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["dqn-export: error: interrupted; nothing written"], lines
    assert list(tmp_path.iterdir()) == []  # no temporary folder, and no parent left made
    assert ran == ["to its end"]  # the write was held to its end, then stopped


def test_a_signal_once_the_export_is_in_place_leaves_it_written(
    tiny_run, tmp_path, monkeypatch, capsys
):
    # Ctrl-C just after the rename said "interrupted; nothing written" and exited 130, with
    # the whole export at --out: a retry was then refused as "already exists".
    from dqn import export

    def write_one_file(path, agent_dir, folder, tflite):
        (folder / "saved_model.pb").write_bytes(b"model")
        return agent_dir

    real_rename = export.os.rename

    def rename_then_signal(a, b):
        real_rename(a, b)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(export, "_write", write_one_file)
    monkeypatch.setattr(export.os, "rename", rename_then_signal)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main([str(tiny_run), "--out", str(tmp_path / "model")]) == 0
    finally:
        signal.signal(signal.SIGINT, previous)
    out, err = capsys.readouterr()
    assert out.startswith("dqn-export: wrote SavedModel") and err == ""
    assert (tmp_path / "model" / "saved_model.pb").read_bytes() == b"model"


def test_an_export_reaches_the_disk_before_its_rename_and_a_failed_flush_writes_nothing(
    tiny_run, tmp_path, monkeypatch, capsys
):
    # A model server reading --out after a machine crash must not find files of zeros: every
    # file and folder is flushed before the rename, and the rename after it.
    from dqn import export, io

    def write_two_files(path, agent_dir, folder, tflite):
        (folder / "variables").mkdir()
        (folder / "saved_model.pb").write_bytes(b"model")
        (folder / "variables" / "variables.index").write_bytes(b"index")
        return agent_dir

    events, real_fsync, real_rename = [], io.os.fsync, export.os.rename

    def fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def rename(a, b):
        events.append(("rename", Path(b).name))
        real_rename(a, b)

    monkeypatch.setattr(export, "_write", write_two_files)
    monkeypatch.setattr(io.os, "fsync", fsync)
    monkeypatch.setattr(export.os, "rename", rename)
    assert main([str(tiny_run), "--out", str(tmp_path / "model")]) == 0
    renamed = events.index(("rename", "model"))
    flushed = {name for kind, name in events[:renamed] if kind == "fsync"}
    assert {"saved_model.pb", "variables.index", "variables"} <= flushed, events
    assert ("fsync", tmp_path.name) in events[renamed:]  # the folder holding the new name

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", disk_full)
    capsys.readouterr()
    code = main([str(tiny_run), "--out", str(tmp_path / "new" / "model2")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert (code, len(lines)) == (2, 1) and lines[0].endswith("No space left on device"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_export_needs_out(tiny_run, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tiny_run)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and "--out" in lines[0], lines


def test_a_refusing_export_process_prints_one_line_and_exits_2(tmp_path):
    # Fails after TensorFlow is imported: its start-up noise must stay off stderr.
    truncated_agent(tmp_path)
    before = tree(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "dqn.export", "agent", "--out", "out"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "corrupt saved agent" in proc.stderr
    assert tree(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["agent"]


def test_the_policy_is_the_online_network_and_acts_by_its_argmax(tmp_path, monkeypatch):
    # In process, without a SavedModel on disk: the module dqn-export saves. The target is
    # moved away from the online network first (at a sync they are equal).
    from dqn import DQNAgent
    from dqn.export import policy_module

    agent = DQNAgent(
        gym.spaces.Box(-1.0, 1.0, (4,), np.float32),
        gym.spaces.Discrete(3),
        DQNConfig(hidden_sizes=(8,), jit_compile=False),
    )
    agent.state = agent.state._replace(target=agent.state.target + 0.5)
    module = policy_module(agent.online, 4)
    obs = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    q = agent.q_values(obs)
    np.testing.assert_allclose(module.q_values(obs)["q_values"].numpy(), q, rtol=1e-5, atol=1e-6)
    assert len(set(q.argmax(axis=1))) > 1  # not one action everywhere: argmin would differ
    np.testing.assert_array_equal(module.action(obs)["action"].numpy(), q.argmax(axis=1))
    # and what dqn-export and export_policy save is that module of the online network
    import dqn.export

    saved = []
    monkeypatch.setattr(dqn.export, "save_policy", lambda model, *_: saved.append(model))
    dqn.export._write_agent(agent, tmp_path / "model", tflite=False)
    assert saved == [agent.online]


def test_the_default_signature_serves_q_values_and_the_line_names_the_shapes(tmp_path, capsys):
    # In process and fast: the slow tests above check the same of a process, without the shapes.
    import tensorflow as tf

    from dqn.agent import DQNAgent

    agent_dir = untrained_agent(tmp_path / "agent")  # 4 observations, 3 actions
    assert main([str(agent_dir), "--out", str(tmp_path / "model")]) == 0
    line = capsys.readouterr().out.strip()
    assert "obs float32 [batch, 4] -> q_values float32 [batch, 3]" in line, line
    obs = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    default = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    served = default(obs=tf.constant(obs))
    assert list(served) == ["q_values"]
    expected = DQNAgent.load(agent_dir).q_values(obs)
    np.testing.assert_allclose(served["q_values"].numpy(), expected, rtol=RTOL, atol=ATOL)


def test_an_out_that_links_to_an_empty_folder_is_written_through_the_link(tmp_path, capsys):
    # Written under a temporary name and renamed into place, the export replaced the link
    # itself, and a link to an empty folder was refused as "not a folder" only at the end.
    agent_dir = untrained_agent(tmp_path / "agent")
    (tmp_path / "v3").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "v3")
    assert main([str(agent_dir), "--out", str(tmp_path / "current")]) == 0, capsys.readouterr()
    assert (tmp_path / "current").is_symlink() and (tmp_path / "v3" / "saved_model.pb").is_file()
    (tmp_path / "v4").mkdir()  # the same from Python
    (tmp_path / "latest").symlink_to(tmp_path / "v4")
    assert export_policy(agent_dir, tmp_path / "latest") == tmp_path / "v4"
    assert (tmp_path / "v4" / "saved_model.pb").is_file()


def test_a_mount_point_out_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    # A folder written whole is renamed into place, and a mount point (a container's volume)
    # cannot be replaced: the export failed with "Device or resource busy" once written.
    agent_dir = untrained_agent(tmp_path / "agent")
    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == volume)
    before = tree(tmp_path)
    assert main([str(agent_dir), "--out", str(volume)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "it is a mount point" in line and f"such as {volume / '1'}" in line
    assert tree(tmp_path) == before


def test_a_name_near_the_filesystems_limit_leaves_room_for_the_temporary_name(tmp_path):
    from dqn.io import atomic_write_text, fresh_tmp_dir

    # The limit is 255 bytes; ".<name>.XXXXXXXX.tmp" did not fit. Four bytes a character in
    # the second: a cut by characters would not have left room.
    for name in ("y" * 250, "\U0001f600" * 63):
        assert fresh_tmp_dir(tmp_path / name).parent == tmp_path
        atomic_write_text(tmp_path / name, "fits\n")
        assert (tmp_path / name).read_text() == "fits\n"


def test_an_agent_json_without_a_field_is_named_by_the_field(tmp_path, capsys):
    # "agent.json is unreadable": export read it on its own, not as a load does.
    import json

    agent = untrained_agent(tmp_path / "agent")
    meta = json.loads((agent / "agent.json").read_text())
    del meta["n_actions"]
    (agent / "agent.json").write_text(json.dumps(meta))
    args = [agent, "--out", tmp_path / "out"]
    assert_refused(main, args, ["agent.json", "n_actions is missing"], capsys, tmp_path)


def test_the_exported_action_breaks_ties_to_the_lowest_index_as_the_agent_does():
    # The module docstring's promise: a tie goes to the lowest action, as numpy's argmax in
    # DQNAgent.act. All weights 0 and the Q-head's bias [0, 1, 1]: actions 1 and 2 tie.
    from dqn import DQNAgent
    from dqn.export import policy_module

    agent = DQNAgent(
        gym.spaces.Box(-1.0, 1.0, (4,), np.float32),
        gym.spaces.Discrete(3),
        DQNConfig(hidden_sizes=(8,), jit_compile=False),
    )
    online = np.zeros_like(agent.state.online)
    online[-3:] = [0.0, 1.0, 1.0]  # the last parameters: the Q-head's bias
    agent.state = agent.state._replace(online=online)
    obs = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    assert agent.act(obs[0]) == 1
    module = policy_module(agent.online, 4)
    np.testing.assert_array_equal(module.action(obs)["action"].numpy(), np.ones(20, np.int64))


def test_a_row_with_one_nan_or_inf_gets_nan_q_values_and_action_0_in_process():
    # The slow SavedModel tests check this on disk; here fast, in process: one bad value in an
    # otherwise finite row makes the whole row NaN, and its action 0.
    from dqn import DQNAgent
    from dqn.export import policy_module

    agent = DQNAgent(
        gym.spaces.Box(-1.0, 1.0, (4,), np.float32),
        gym.spaces.Discrete(3),
        DQNConfig(hidden_sizes=(8,), jit_compile=False),
    )
    online = agent.state.online.copy()
    online[-3:] = [0.0, 0.0, 50.0]  # the Q-head's bias: action 2 is the argmax of finite rows
    agent.state = agent.state._replace(online=online)
    obs = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    obs[0, 1], obs[1, 3], obs[2, 0] = np.nan, np.inf, -np.inf
    module = policy_module(agent.online, 4)
    q = module.q_values(obs)["q_values"].numpy()
    assert np.isnan(q[:3]).all() and np.isfinite(q[3]).all()
    assert module.action(obs)["action"].numpy().tolist() == [0, 0, 0, 2]
    # float32's largest value is finite: a row holding it is served as agent.q_values serves it.
    largest = np.array([[np.finfo(np.float32).max, 0.0, 0.0, 0.0]], np.float32)
    q = module.q_values(largest)["q_values"].numpy()
    np.testing.assert_array_equal(q[0], agent.q_values(largest[0]))


def test_a_finite_row_whose_q_values_overflow_to_nan_gets_the_agents_action():
    # inf - inf inside the network: numpy's argmax in DQNAgent.act takes the first NaN, and
    # tf.argmax passed it by: act said 1 where the export said 0. Weights: h = relu(o0 + o1)
    # twice, q = [h0 + h1, h0 - h1]; o = [3e38, 3e38, ...] makes h = [inf, inf], q = [inf, nan].
    from dqn.export import policy_module

    agent = DQNAgent(
        gym.spaces.Box(-1.0, 1.0, (4,), np.float32),
        gym.spaces.Discrete(2),
        DQNConfig(hidden_sizes=(2,), jit_compile=False, learner="numpy"),
    )
    w1 = np.zeros((4, 2), np.float32)
    w1[:2] = 1.0
    w2 = np.array([[1.0, 1.0], [1.0, -1.0]], np.float32)
    online = np.concatenate([w1.ravel(), np.zeros(2), w2.ravel(), np.zeros(2)]).astype(np.float32)
    agent.state = agent.state._replace(online=online)
    rows = np.array(
        [[3e38, 3e38, 0, 0], [1, 2, 0, 0], [-3e38, -3e38, 0, 0]], np.float32
    )  # [inf, nan]; finite; [0, 0] (relu)
    assert np.isnan(agent.q_values(rows[0])[1]) and np.isinf(agent.q_values(rows[0])[0])
    module = policy_module(agent.online, 4)
    served = module.action(rows)["action"].numpy().tolist()
    assert served == [agent.act(row) for row in rows] == [1, 0, 0]
    # +inf ranks below NaN, above every number (float32's largest too), as numpy ranks them.
    largest = np.finfo(np.float32).max
    q = np.array(
        [[np.inf, np.nan], [np.inf, 5.0], [np.inf, np.inf], [-np.inf, np.nan], [largest, np.inf]],
        np.float32,
    )
    want = q.argmax(axis=1).tolist()
    assert want == [1, 0, 0, 1, 1]
    from dqn.export import greedy_actions

    assert greedy_actions(q).numpy().tolist() == want
    # Several NaNs in a row: numpy's argmax, and so agent.act, takes the first of them.
    nans = np.array([[1, np.nan, 3, np.nan], [np.nan, 0, np.nan, 9], [0, 2, np.nan, np.nan]])
    nans = nans.astype(np.float32)
    assert greedy_actions(nans).numpy().tolist() == nans.argmax(axis=1).tolist() == [1, 0, 2]


@pytest.mark.parametrize("owner", ["saved agent", "study"])
def test_an_export_inside_a_saved_agent_or_a_study_is_refused(owner, tiny_run, tmp_path, capsys):
    # Accepted, it stopped the agent's next save there (on_eval keeping the best agent) and the
    # study's rerun ("holds files a study does not write").
    folder = tmp_path / "made"
    if owner == "saved agent":
        DQNAgent.load(tiny_run).save(folder)
    else:
        (folder / "runs" / "huber-seed0" / "run").mkdir(parents=True)
    fragments = [f"is inside the {owner} folder {folder}", "export elsewhere"]
    assert_refused(main, [tiny_run, "--out", folder / "exp"], fragments, capsys, tmp_path)


def test_an_export_beside_dqn_trains_runs_or_inside_a_run_is_written(tiny_run, tmp_path):
    # A project whose runs/ holds plain runs (dqn-train's default output_dir) is no study: the
    # README's `dqn-export runs/<run> --out models/cartpole` was refused as inside one.
    project = tmp_path / "project"
    shutil.copytree(tiny_run, project / "runs" / "CartPole-v1-huber-seed0")
    run = project / "runs" / "CartPole-v1-huber-seed0"
    for out in (project / "models" / "cartpole", run / "policy"):
        export_policy(run, out)
        assert (out / "saved_model.pb").is_file()


def test_an_export_out_of_a_study_through_dotdot_is_written(tiny_run, tmp_path, monkeypatch):
    # Working in a study's folder, ../models/x was taken for a folder inside the study: the
    # path's parents were read as written, "study" among them.
    study = tmp_path / "study"
    (study / "runs" / "huber-seed0" / "run").mkdir(parents=True)
    monkeypatch.chdir(study)
    export_policy(tiny_run, "../models/x")
    assert (tmp_path / "models" / "x" / "saved_model.pb").is_file()


def test_a_tensorflow_file_error_is_told_by_its_reason_not_its_op_or_temporary_file():
    # A full disk under dqn-export printed TensorFlow's op and the hidden temporary folder:
    # "cannot write the SavedModel: {{function_node __wrapped__SaveV2...}} out/.E.p56rppkz.tmp/
    # variables/...; No space left on device [Op:SaveV2]".
    import tensorflow as tf

    from dqn.errors import op_error_reason

    saved = (
        "{{function_node __wrapped__SaveV2_dtypes_2_device_/job:localhost/replica:0/task:0/"
        "device:CPU:0}} out/.E.p56rppkz.tmp/variables/variables_temp/part-00000-of-00001.data-"
        "00000-of-00001.tempstate2817; No space left on device [Op:SaveV2]"
    )
    writer = (
        "{{function_node __wrapped__CreateSummaryFileWriter_device_/job:localhost/replica:0/"
        "task:0/device:CPU:0}} Not a directory [Op:CreateSummaryFileWriter] name: "
    )
    assert op_error_reason(tf.errors.UnknownError(None, None, saved)) == "No space left on device"
    assert op_error_reason(tf.errors.FailedPreconditionError(None, None, writer)) == (
        "Not a directory"
    )
