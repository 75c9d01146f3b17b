"""``dqn-evaluate RUN --gif FILE``: the evaluation's first episode, drawn frame by frame."""

import re
import sys

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from dqn.cli import evaluate_main


def gif_frames_and_ms(path):
    """(frames, total milliseconds): Pillow merges identical frames and adds up their times."""
    with Image.open(path) as image:
        durations = []
        for i in range(image.n_frames):
            image.seek(i)
            durations.append(image.info["duration"])
        return image.size, sum(durations)


def test_the_gif_is_the_first_evaluation_episode_at_the_envs_frame_rate(tiny_run, tmp_path, capsys):
    out = tmp_path / "cartpole.gif"
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--gif", str(out)]) == 0
    evaluated, agent, wrote = capsys.readouterr().out.strip().splitlines()
    assert agent.startswith(f"agent: {tiny_run / 'checkpoints' / 'step-000000600' / 'agent'} (")
    ret = float(evaluated.split("greedy return ")[1].split()[0])
    frames = int(wrote.split(" frames")[0].split(", ")[-1])
    assert wrote.startswith(f"wrote {out}: the episode reset with seed 10000, return {ret:g}")
    assert frames == ret + 1  # CartPole pays 1 a step: the reset's frame and one per step
    size, ms = gif_frames_and_ms(out)
    assert size == (600, 400) and ms == 20 * frames  # CartPole's 50 frames/s
    assert [p.name for p in tmp_path.iterdir()] == ["cartpole.gif"]  # no temporary file left


def test_drawing_leaves_the_processs_display_settings_as_they_were(
    tiny_run, tmp_path, capsys, monkeypatch
):
    """pygame draws to its dummy drivers while the GIF is made; they used to stay set, and a
    later render_mode="human" window of the same process (a notebook's) never opened."""
    import os

    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.setenv("SDL_AUDIODRIVER", "pulseaudio")
    gif = str(tmp_path / "a.gif")
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--gif", gif]) == 0
    assert "SDL_VIDEODRIVER" not in os.environ
    assert os.environ["SDL_AUDIODRIVER"] == "pulseaudio"


def test_a_long_episode_is_drawn_up_to_max_frames(tiny_run, tmp_path, capsys, monkeypatch):
    from dqn import render

    monkeypatch.setattr(render, "MAX_FRAMES", 5)
    out = tmp_path / "cut.gif"
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--gif", str(out)]) == 0
    assert "5 frames (its first 4 of " in capsys.readouterr().out
    assert gif_frames_and_ms(out)[1] == 5 * 20


@pytest.mark.parametrize(
    "name, message",
    [
        ("old.gif", "already exists: give another path"),
        ("movie.mp4", "ending in .gif"),
        (".gif", "give a name before .gif"),  # a hidden file's name, with no suffix
        ("old.gif/sub/x.gif", "old.gif is a file, not a folder"),
        ("n" * 300 + ".gif", ".gif: File name too long"),  # was blamed on the run being read
    ],
)
def test_a_gif_path_that_is_taken_or_not_a_gif_is_refused_first(
    tiny_run, tmp_path, capsys, name, message
):
    path = tmp_path / name
    if name.startswith("old.gif"):
        (tmp_path / "old.gif").write_bytes(b"mine")
    assert evaluate_main([str(tiny_run), "--gif", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dqn-evaluate: error: the GIF {path}") and message in line
    mine = name.startswith("old.gif")
    assert [p.name for p in tmp_path.iterdir()] == (["old.gif"] if mine else [])
    assert not mine or (tmp_path / "old.gif").read_bytes() == b"mine"


def test_a_gif_inside_a_checkpoint_is_refused_and_the_run_stays_whole(tiny_run_copy, capsys):
    # A file the checkpoint's manifest does not list made its resume and evaluation set the
    # newest checkpoint aside as corrupt: dqn-evaluate, which only reads runs, broke one.
    from dqn.agent_files import verify_checkpoint

    newest = tiny_run_copy / "checkpoints" / "step-000000600"
    for gif in (newest / "episode.gif", newest / "agent" / "frames" / "episode.gif"):
        assert evaluate_main([str(newest), "--episodes", "1", "--gif", str(gif)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert f"is inside {newest}, which a file written there would break" in line
    verify_checkpoint(newest)  # still good


def test_a_gif_suffix_in_capitals_is_a_gif(tmp_path):
    from dqn.render import check_gif_path

    check_gif_path(tmp_path / "CARTPOLE.GIF")  # not refused


def test_without_pygame_the_error_says_what_to_install(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # `import pygame` raises ImportError
    out = tmp_path / "x.gif"
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--gif", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        "needs a package that is not installed" in line
        and "pip install 'gymnasium[classic-control]'" in line
    )
    assert not out.exists()


def test_ctrl_c_while_drawing_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    from dqn import render

    def interrupted(frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "_palette_image", interrupted)
    assert (
        evaluate_main([str(tiny_run), "--episodes", "1", "--gif", str(tmp_path / "x.gif")]) == 130
    )
    assert list(tmp_path.iterdir()) == []


class Undrawable(gym.Env):
    metadata = {"render_modes": ["human"]}
    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)


def test_an_env_without_rgb_array_frames_is_refused_before_its_episode(tiny_run, tmp_path):
    from dqn.agent import DQNAgent
    from dqn.errors import DQNError
    from dqn.render import record_gif
    from tests.conftest import register_once

    env_id = register_once("UndrawableForTest-v0", Undrawable)
    agent = DQNAgent.load(next((tiny_run / "checkpoints").iterdir()) / "agent")
    with pytest.raises(DQNError, match=r"needs the rgb_array render mode.*are \['human'\]"):
        record_gif(agent, env_id, tmp_path / "x.gif", 0)
    assert list(tmp_path.iterdir()) == []


class FrameOf(gym.Env):
    """An env that lists rgb_array and whose render() returns ``frame``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)
    frame = None

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 1.0, True, False, {}

    def render(self):
        return self.frame


class NoFrame(FrameOf):
    frame = None


class FlatFrame(FrameOf):
    frame = np.zeros(30, np.uint8)


class GreyFrame(FrameOf):
    frame = np.zeros((20, 30), np.uint8)


@pytest.mark.filterwarnings("ignore:.*RGB-array rendering should return")  # gymnasium's checker
@pytest.mark.parametrize(
    "kind, got", [(NoFrame, "returned NoneType"), (FlatFrame, "an array of shape (30,)")]
)
def test_an_env_whose_rgb_array_frames_are_no_image_is_refused_in_one_line(
    kind, got, tiny_run, tmp_path
):
    # It lists rgb_array but returns None: --gif stopped with numpy's TypeError, a traceback.
    from dqn.agent import DQNAgent
    from dqn.errors import DQNError
    from dqn.render import record_gif
    from tests.conftest import register_once

    env_id = register_once(f"{kind.__name__}ForTest-v0", kind)
    agent = DQNAgent.load(next((tiny_run / "checkpoints").iterdir()) / "agent")
    with pytest.raises(DQNError, match=f"{env_id}' cannot draw its frames: .* {re.escape(got)}"):
        record_gif(agent, env_id, tmp_path / "x.gif", 0)
    assert list(tmp_path.iterdir()) == []
    grey = register_once("GreyFrameForTest-v0", GreyFrame)  # a grey image is one
    assert record_gif(agent, grey, tmp_path / "grey.gif", 0)[:2] == (2, 1)


def test_a_gif_that_cannot_be_written_says_so_not_that_the_run_cannot_be_read(
    tiny_run, tmp_path, capsys, monkeypatch
):
    # It said "cannot read <run>: No such file or directory: /proc/.x.gif.*.tmp".
    from dqn import render

    def full_disk(path, data, new=False):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(render, "atomic_write_bytes", full_disk)
    out = tmp_path / "x.gif"
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--gif", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    message = f"cannot write the GIF {out}: No space left on device ({out})"
    assert line == f"dqn-evaluate: error: {message}"


def test_a_gif_written_by_another_process_while_this_one_drew_is_kept(
    tiny_run, tmp_path, capsys, monkeypatch
):
    # Two `dqn-evaluate --gif` to one new name at once: both passed the check before drawing,
    # and the second to finish replaced the first's file.
    from dqn import evaluation

    out = tmp_path / "x.gif"
    real = evaluation.evaluate

    def drawn_meanwhile(*args, **kwargs):
        out.write_bytes(b"the other's")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", drawn_meanwhile)
    assert evaluate_main([str(tiny_run), "--episodes", "1", "--gif", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"dqn-evaluate: error: the GIF {out} already exists (written while this episode was "
        "drawn): give another path, or remove it first"
    )
    assert out.read_bytes() == b"the other's" and [p.name for p in tmp_path.iterdir()] == ["x.gif"]


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_a_new_files_write_never_replaces_one_there(links, tmp_path, monkeypatch):
    import errno
    import os

    from dqn import io

    if not links:  # FAT, some network filesystems: a check, then a rename

        def no_link(src, dst):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    io.atomic_write_bytes(tmp_path / "a.gif", b"first", new=True)
    with pytest.raises(FileExistsError):
        io.atomic_write_bytes(tmp_path / "a.gif", b"second", new=True)
    assert (tmp_path / "a.gif").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # no temporary file left


def test_a_gif_inside_a_saved_agent_is_refused_and_the_agent_saves_there_again(
    tiny_run, tmp_path, capsys
):
    # Written beside agent.json, it made the next save of an agent there refuse the folder.
    from dqn import DQNAgent

    agent = DQNAgent.load(tiny_run)
    agent.save(tmp_path / "best")
    gif = tmp_path / "best" / "a.gif"
    assert evaluate_main([str(tmp_path / "best"), "--episodes", "1", "--gif", str(gif)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"the GIF {gif} is inside the saved agent {tmp_path / 'best'}" in line
    agent.save(tmp_path / "best")


def test_record_gif_draws_the_env_the_agent_learned_with_its_env_kwargs(tmp_path):
    # As the README calls it, record_gif(agent, config.env_id, path, seed) drew a plain
    # CartPole for an agent whose run gave the env kwargs: the episode of another env.
    from dqn import DQNAgent, DQNConfig
    from dqn.render import record_gif

    config = DQNConfig(hidden_sizes=(8,), env_kwargs={"max_episode_steps": 3})
    env = gym.make("CartPole-v1")
    agent = DQNAgent(env.observation_space, env.action_space, config)
    # 3 steps is the limit given (the same episode runs on past it without: the second call).
    assert record_gif(agent, "CartPole-v1", tmp_path / "its.gif", seed=0)[1] == 3
    _, steps, _ = record_gif(agent, "CartPole-v1", tmp_path / "plain.gif", seed=0, env_kwargs={})
    assert steps > 3  # given, they are what is drawn: none here
    with pytest.warns(DeprecationWarning, match="CartPole-v0 is out of date"):  # gymnasium's
        other = record_gif(agent, "CartPole-v0", tmp_path / "other.gif", seed=0)
    assert other[1] > 3  # another env than its own: none of its kwargs
