"""An agent folder's files as TensorFlow and numpy write and read them (``DQNAgent.save`` and
``load``; a population member saves through ``write_agent_folder`` too). What the files must
hold, and the checks that need no TensorFlow, are in ``dqn.agent_files``.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
import weakref
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dqn.agent_files import FORMAT_VERSION, archive_problem, corrupt_file, read_npz
from dqn.config import DQNConfig
from dqn.errors import CheckpointError, ConfigError, first_line
from dqn.io import atomic_write_text
from dqn.learner import LearnerArrays


@contextmanager
def quiet_keras_arrays() -> Iterator[None]:
    """Hide the one DeprecationWarning Keras 3 raises, under numpy 2, each time it converts a
    TensorFlow variable with ``np.array(x)`` (twelve a save): TensorFlow's ``__array__`` takes no
    ``copy`` argument. It is theirs and harmless, but a user's ``-W error`` or pytest
    ``filterwarnings = error`` turned it into a failed save."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "__array__ implementation doesn't accept a copy keyword", DeprecationWarning
        )
        yield


def write_agent_folder(
    folder: Path,
    config: DQNConfig,
    online: keras.Model,
    target: keras.Model,
    state: LearnerArrays,
    sizes: tuple[int, int],
    rng_state: dict,
    note: str | None = None,
) -> None:
    """The files of a saved agent (``dqn.agent_files``): the models hold the weights to save.

    Also how a population member (``dqn.population``) saves itself, so that a member's folder
    loads with ``DQNAgent.load`` like a single run's.
    """
    config.to_yaml(folder / "config.yaml", note)  # note: DQNAgent.network_note
    with quiet_keras_arrays():
        online.save(folder / "online.keras")
        target.save(folder / "target.keras")
    np.savez(
        folder / "optimizer.npz",
        adam_m=state.adam_m,
        adam_v=state.adam_v,
        adam_step=np.float32(state.adam_step),
    )
    meta = {
        "format_version": FORMAT_VERSION,
        "obs_dim": sizes[0],
        "n_actions": sizes[1],
        "grad_steps": int(state.grad_steps),
        "rng_state": rng_state,
    }
    atomic_write_text(folder / "agent.json", json.dumps(meta, indent=1))


def load_model_file(path: Path) -> keras.Model:
    # Keras reports a file that is not a zip as "File not found"; say what it is.
    if why := archive_problem(path):
        raise corrupt_file(path, why)
    if (read := _model_config(path)) is not None:
        config, weights_bytes = read
        if _names_a_saved_model(config):
            raise CheckpointError(
                f"{path}: the network holds a TFSMLayer, an external TensorFlow SavedModel "
                "whose graph would run; dqn does not load it"
            )
        # Keras builds each layer's weights before it reads them: a 2 KB config that declared
        # a Dense layer of 50,000,000 units took 23 GB and was killed. Each unit has at least
        # one float32 weight in the file (its kernel's column), which Keras writes uncompressed.
        if 4 * (units := _dense_units(config)) > weights_bytes:
            raise corrupt_file(
                path,
                f"its Dense layers declare {units:,} units, more than its weights file holds "
                f"({weights_bytes:,} bytes)",
            )
    try:
        return read_model(path)
    except Exception as exc:  # zip, HDF5, JSON and Keras each raise their own types
        if why := unsafe_or_unknown(exc):
            raise CheckpointError(f"{path}: {why}") from None
        if newer := _saved_by_newer_keras(path):
            # Keras reads older files, not newer ones: a Dense layer's config gained keys that
            # an older from_config refuses. The file is fine: "corrupt" sent users to delete it.
            raise CheckpointError(
                f"{path}: saved by Keras {newer}, which this Keras {keras.__version__} fails to "
                f"read; install keras>={newer} to load it"
            ) from None
        raise corrupt_file(path, first_line(exc)) from None


# The network_fn models check_loads_again saved and read back: each is checked once.
_LOADS_AGAIN: weakref.WeakSet[keras.Model] = weakref.WeakSet()


def check_loads_again(model: keras.Model) -> None:
    """ConfigError unless Keras reads back the .keras file it writes of a network_fn's
    ``model``. A Lambda layer (which Keras does not read in safe mode), a layer class that is
    not registered, or a get_config that its from_config does not take: each was saved in
    every checkpoint of a run, and then no checkpoint could be resumed, evaluated or exported.
    Checked by a save into a temporary folder and a read of it, once per model."""
    if model in _LOADS_AGAIN:
        return
    try:
        tmp = tempfile.TemporaryDirectory(prefix="dqn-")
    except OSError:  # no temporary folder to write in: not the model's doing
        return
    with tmp:
        path = Path(tmp.name) / "model.keras"
        try:
            with quiet_keras_arrays():
                model.save(path)
        except OSError:
            return  # the temporary folder's disk, not the model: a checkpoint names its own
        except Exception as exc:  # a config JSON cannot hold
            raise ConfigError(
                f"network_fn's model {type(model).__name__} cannot be saved (no checkpoint "
                f"could be written): {first_line(exc)}"
            ) from None
        try:
            read_model(path)
        except Exception as exc:  # Keras raises its own types, and the user's classes theirs
            raise ConfigError(
                f"network_fn's model {type(model).__name__} is saved in a file Keras cannot "
                "read back, so no checkpoint of it could be resumed, evaluated or exported: "
                f"{unsafe_or_unknown(exc, saving=True) or first_line(exc)}"
            ) from None
    _LOADS_AGAIN.add(model)


def read_model(path: Path) -> keras.Model:
    """The one way dqn reads a network's .keras file: uncompiled, in Keras's safe mode."""
    return keras.models.load_model(path, compile=False, safe_mode=True)


def unsafe_or_unknown(exc: Exception, saving: bool = False) -> str | None:
    """Why Keras did not rebuild a network from a file that is fine, where the cause is the
    network_fn's own layers (a Lambda layer, a class Keras cannot find), or None. ``saving``:
    said of a model being saved, whose classes are imported already: they need registering."""
    text = str(exc)
    if "Lambda" in text and "unsafe" in text:
        return (
            "the network has a Lambda layer, which Keras does not load in safe mode (its code "
            "would run); write the layer as a class registered with "
            "@keras.saving.register_keras_serializable()"
        )
    if "Could not locate" in text or "register_keras_serializable" in text:
        kind, name = _missing(text) or ("layer class", first_line(exc))
        if saving:
            return (
                f"the network uses a {kind} Keras cannot find by its name: {name} (register "
                "it with @keras.saving.register_keras_serializable())"
            )
        return (
            f"the network uses a {kind} Keras cannot find: {name} (import the module that "
            "defines it, registered with @keras.saving.register_keras_serializable(), before "
            "loading; dqn-train, dqn-evaluate and dqn-export: --import MODULE)"
        )
    return None


def _saved_by_newer_keras(path: Path) -> str | None:
    """The Keras version a .keras file's metadata.json names if it is newer than this Keras's,
    else None (older, unreadable or absent)."""
    from dqn.runtime import release

    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("metadata.json")).get("keras_version")
    except Exception:  # zip, JSON, a list for a dict: no version to name
        return None
    mine = release(keras.__version__, 3)
    return saved if any(mine) and release(saved, 3) > mine else None


def _model_config(path: Path) -> tuple[Any, int] | None:
    """A .keras file's config.json and the size of its weights file as stored, or None if they
    cannot be read (left to Keras, which reports the file as corrupt)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return (
                json.loads(archive.read("config.json")),
                archive.getinfo("model.weights.h5").compress_size,
            )
    except Exception:  # zip, JSON (nesting too deep), compression: Keras says it as corrupt
        return None


def _nested(config: Any) -> Iterator[Any]:
    """Every dict, list, key and value of a JSON document, at any depth."""
    stack = [config]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item


def _names_a_saved_model(config: Any) -> bool:
    """Whether a model's config names Keras's TFSMLayer anywhere (as a layer, or as a function a
    config calls). It loads a SavedModel from a path the file gives, and its graph runs when the
    network does: Keras's safe_mode let it through before 3.12.1 and in 3.13.0-3.13.1, and a
    Q-network has no use for it, so it is refused here whatever the Keras."""
    return any(isinstance(v, str) and v.rpartition(".")[2] == "TFSMLayer" for v in _nested(config))


def _dense_units(config: Any) -> int:
    """The units of every Dense layer a model's config declares."""
    units = 0
    for item in _nested(config):
        if isinstance(item, dict) and item.get("class_name") == "Dense":
            count = item["config"].get("units") if isinstance(item.get("config"), dict) else None
            units += count if isinstance(count, int) and count > 0 else 0
    return units


def _missing(text: str) -> tuple[str, str] | None:
    """``("layer class", "Twice, from module mynet")`` for the class Keras's error names (its
    first line names only the model that holds it, ``Sequential``), with the module its config
    records, or ``("function", "doubled")`` for a function (an activation) it names; else None."""
    if (found := re.search(r"Could not locate (class|function) '([\w.]+)'", text)) is None:
        return None
    kind, name = found.groups()
    if kind == "function":
        return "function", name
    module = re.search(rf"'module': '([\w.]+)', 'class_name': '{re.escape(name)}'", text)
    return "layer class", name if module is None else f"{name}, from module {module.group(1)}"


def load_adam_file(path: Path) -> dict[str, np.ndarray]:
    # np.load calls any file that is not a zip "pickled data"; say what it is.
    if why := archive_problem(path):
        raise corrupt_file(path, why)
    try:
        arrays = read_npz(path)
        adam = {k: arrays[k] for k in ("adam_m", "adam_v", "adam_step")}
    except Exception as exc:  # zip, a pickled array (refused), a missing key
        raise corrupt_file(path, first_line(exc)) from None
    if adam["adam_step"].shape != ():
        raise corrupt_file(path, f"adam_step has shape {adam['adam_step'].shape}, not a scalar")
    for key, value in adam.items():  # a string's step failed in np.float32 with a traceback
        if value.dtype.kind != "f":
            raise corrupt_file(path, f"{key} holds {value.dtype}, not floating-point numbers")
    # Adam's step count and its second moment are never negative, nor the count a fraction: a
    # step of -1e9 overflowed beta ** step in the next update (a traceback), and a negative
    # moment's square root made every weight NaN. (NaN moments are kept: an agent saved after
    # it diverged holds them, and loads for inspection.)
    step = float(adam["adam_step"])
    if not math.isfinite(step) or step < 0 or not step.is_integer():
        raise corrupt_file(path, f"adam_step is {step:g}, not a count of steps")
    if (adam["adam_v"] < 0).any():
        raise corrupt_file(path, "adam_v holds negative values (a mean of squares)")
    return {key: value.astype(np.float32, copy=False) for key, value in adam.items()}


def network_sizes(model: keras.Model, obs_dim: int) -> tuple[int | None, int | None]:
    """(input, output) widths of a loaded Q-network; None where it has not one [batch, k].

    A subclassed keras.Model declares no input: it is asked, by a batch of ``obs_dim`` zeros,
    which it takes (obs_dim) or refuses (None)."""
    try:
        shapes = model.input_shape, model.output_shape
    except AttributeError:
        return _probe(model, obs_dim)
    except ValueError:  # a model without a defined input or output
        return None, None
    return _width(shapes[0]), _width(shapes[1])


def _probe(model: keras.Model, obs_dim: int) -> tuple[int | None, int | None]:
    try:
        q = model(np.zeros((2, obs_dim), np.float32))
    except Exception:  # Keras raises many kinds for an input a model cannot take
        return None, None
    return obs_dim, _width(tuple(getattr(q, "shape", ())))


def _width(shape) -> int | None:
    """k of a [batch, k] shape; None for anything else."""
    one = isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int)
    return shape[1] if one else None
