"""A greedy episode drawn as an animated GIF: ``dqn-evaluate RUN --gif cartpole.gif``.

The episode is the evaluation's own: ``evaluate`` runs it (the same reset seed, the same checks
of what the env returns), through a wrapper that keeps the env's ``rgb_array`` frame after the
reset and after every step. Drawing gymnasium's classic-control envs needs pygame (dqn's
``render`` extra, ``pip install -e '.[render]'`` in its folder); Pillow, which matplotlib
already needs, writes the GIF. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np

from dqn.agent_files import BREAKS, checkpoint_around, keeper_around
from dqn.errors import DQNError
from dqn.io import atomic_write_bytes, followed

# 2,000 frames is 40 s at CartPole's 50 frames/s, and about 0.5 GB of 600 x 400 RGB frames
# before they are cut to a palette (each frame is, as it comes): a longer episode is drawn up
# to there, and its return is still the whole episode's.
MAX_FRAMES = 2_000


class _Frames(gym.Wrapper):
    """Keeps ``env.render()`` after the reset and each step, as 8-bit palette images."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.frames: list = []
        self.steps = 0

    def _keep(self) -> None:
        if len(self.frames) < MAX_FRAMES:
            self.frames.append(_palette_image(_checked_frame(self.env.render(), self.env)))

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._keep()
        return out

    def step(self, action):
        out = self.env.step(action)
        self.steps += 1
        self._keep()
        return out


def _checked_frame(frame, env: gym.Env) -> np.ndarray:
    """The frame as an array of numbers, height x width (grey) or x 3 or 4 (RGB, RGBA); else a
    DQNError naming the env (an env that lists rgb_array but returns None stopped a GIF with a
    traceback)."""
    array = np.asarray(frame) if isinstance(frame, (np.ndarray, list)) else None
    fits = array is not None and array.dtype.kind in "biuf"
    if fits and (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        return array
    got = f"an array of shape {array.shape}" if array is not None else type(frame).__name__
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    raise DQNError(
        f"env {name!r} cannot draw its frames: in the rgb_array render mode its render() "
        f"returned {got}, not an image (height x width, or x 3 or 4, numbers)"
    )


def _palette_image(frame: np.ndarray):
    from PIL import Image

    # Each frame gets its own palette (an env's later frames may hold colours its first does
    # not); no dithering: flat drawings need none, and it would make the file larger.
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    return image.quantize(method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def check_gif_path(path: Path) -> Path:
    """Refused before any episode is run: another suffix, or a file that is already there.
    Returns where the GIF goes: ``path``, or where it points if it is a link (written through,
    as open() would, not replaced)."""
    path = followed(path)
    if path.suffix.lower() != ".gif":
        # ".gif" alone is a hidden file's name with no suffix: say what it lacks.
        lacks = (
            "a name before .gif" if path.name.lower() == ".gif" else "a file name ending in .gif"
        )
        raise DQNError(f"the GIF {path}: give {lacks}")
    try:
        there = path.exists()
    except OSError as exc:  # a name too long for the filesystem
        raise DQNError(f"the GIF {path}: {exc.strerror or exc}") from None
    if there:
        raise DQNError(f"the GIF {path} already exists: give another path, or remove it first")
    if (around := checkpoint_around(path)) is not None:
        raise DQNError(f"the GIF {path} is inside {around}, {BREAKS}: give a path outside it")
    if (found := keeper_around(path)) is not None:  # its next save or rerun refused the GIF
        raise DQNError(
            f"the GIF {path} is inside the {found[1]} {found[0]}, whose next write would refuse "
            "it: give a path outside it"
        )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DQNError(f"the GIF {path}: {folder} is a file, not a folder")
    return path


@contextlib.contextmanager
def _sdl_without_a_display() -> Iterator[None]:
    """pygame opens no window for rgb_array, but its display start-up looks for one and prints
    "XDG_RUNTIME_DIR is invalid" on a machine without a desktop: its dummy drivers need none.
    Set while the frames are drawn (pygame reads them when it starts, and the env's close ends
    it), then put back: a later window of the same process, a notebook's, must still open."""
    keys = ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER")
    saved = {key: os.environ.get(key) for key in keys}
    for key in keys:
        os.environ.setdefault(key, "dummy")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def record_gif(
    agent, env_id: str, path: str | Path, seed: int, env_kwargs=None
) -> tuple[int, int, float]:
    """Draw one greedy episode (reset with ``seed``) into ``path``; return (frames, steps,
    return): a frame for the reset and one per step, up to ``MAX_FRAMES``. ``env_kwargs`` are
    gym.make's; left out, they are the agent's config's when ``env_id`` is its env (a run's
    env_kwargs reach every env it makes: the episode drawn is one of the env it learned), and
    none for another env.

    ``path`` is written whole or not at all. An env that cannot draw frames (no ``rgb_array``
    render mode) or lacks the package that draws them is refused in one line (DQNError).
    """
    from dqn.config import user_path
    from dqn.envs import make_env
    from dqn.evaluation import evaluate

    if not isinstance(env_id, str):  # evaluate takes an env; this makes its own to draw
        from dqn.errors import InputError

        raise InputError(
            f"record_gif makes its env from an id such as 'CartPole-v1' (env.spec.id), got "
            f"{type(env_id).__name__}"
        )
    path = check_gif_path(user_path(path, "path"))
    config = getattr(agent, "config", None)
    if env_kwargs is None and env_id == getattr(config, "env_id", None):
        env_kwargs = config.env_kwargs
    kwargs = dict(env_kwargs or {})
    probe = make_env(env_id, **kwargs)
    modes = probe.metadata.get("render_modes", [])
    probe.close()
    if "rgb_array" not in modes:
        raise DQNError(
            f"env {env_id!r} cannot draw its frames: a GIF needs the rgb_array render mode, "
            f"and its render modes are {list(modes)}"
        )
    with _sdl_without_a_display():
        env = _Frames(make_env(env_id, render_mode="rgb_array", **kwargs))
        try:
            _, _, returns = evaluate(agent, env, 1, seed)
        except gym.error.DependencyNotInstalled as exc:
            raise DQNError(
                f"drawing {env_id} needs a package that is not installed: {exc} "
                "(for gymnasium's classic-control envs: pip install 'gymnasium[classic-control]' "
                "pillow, dqn's render extra)"
            ) from None
        finally:
            env.close()
    fps = env.metadata.get("render_fps") or 30
    buffer = io.BytesIO()
    first, *rest = env.frames
    # GIF frame times are whole centiseconds: 50 frames/s is 20 ms, 30 is 30 ms (33 rounded).
    duration = max(10, round(100 / fps) * 10)
    first.save(buffer, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)
    try:
        atomic_write_bytes(path, buffer.getvalue(), new=True)
    except FileExistsError:  # written by another process while this one drew its episode
        raise DQNError(
            f"the GIF {path} already exists (written while this episode was drawn): give another "
            "path, or remove it first"
        ) from None
    except OSError as exc:  # a full disk, a folder that cannot be made or written to
        where = f" ({exc.filename})" if exc.filename and exc.strerror else ""
        raise DQNError(f"cannot write the GIF {path}: {exc.strerror or exc}{where}") from None
    return len(env.frames), env.steps, float(returns[0])
