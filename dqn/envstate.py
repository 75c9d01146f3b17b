"""Capture and restore a Gymnasium env mid-episode, without pickle.

Gymnasium 1.x has no get/set-state API, and ``reward_range``-style metadata is gone too, so this
is generic by construction: it walks the wrapper chain (``TimeLimit -> OrderEnforcing ->
PassiveEnvChecker -> env``) and records every instance attribute that is plain data. For
CartPole that is the physics ``state`` array, ``steps_beyond_terminated``, the env's
``np_random`` generator (bit-generator state) and the TimeLimit's ``_elapsed_steps``: everything
that decides the next observation. Checkpointing only at episode boundaries would be simpler,
but a run killed at an arbitrary step resumes from whatever step its last checkpoint was at.

Envs that keep state elsewhere (a Box2D world, a MuJoCo model, an emulator) cannot be captured
this way; ``EnvSnapshot.uncaptured`` names such attributes so the caller can say so.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

_SCALARS = (bool, int, float, str, type(None))
# Attributes that describe the env rather than hold its state (and are rebuilt by gym.make).
_NOT_STATE = (gym.Space, gym.envs.registration.EnvSpec)


class EnvSnapshot(NamedTuple):
    """``layers[i]`` describes wrapper i (0 = outermost); arrays live apart, for an .npz file."""

    layers: list[dict[str, Any]]  # JSON-able: name -> {"value"|"array"|"generator": ...}
    arrays: dict[str, np.ndarray]  # "env{i}.{name}" -> array (numpy scalars as 0-d arrays)
    uncaptured: list[str]  # attributes of the innermost env that are state we cannot record


def wrapper_chain(env: gym.Env) -> list[Any]:
    """Every layer of a wrapped env, outermost first: [env, its inner env, ..., unwrapped]."""
    layers = [env]
    while hasattr(layers[-1], "env") and layers[-1] is not layers[-1].unwrapped:
        layers.append(layers[-1].env)
    return layers


def capture_env_state(env: gym.Env) -> EnvSnapshot:
    """Everything plain in each layer's ``__dict__``: scalars, arrays, numpy generators."""
    layers, arrays, uncaptured = [], {}, []
    chain = wrapper_chain(env)
    for i, layer in enumerate(chain):
        record: dict[str, Any] = {}
        for name, value in vars(layer).items():
            if name == "env" or isinstance(value, _NOT_STATE):
                continue
            if isinstance(value, _SCALARS):
                record[name] = {"value": value}
            elif isinstance(value, (np.ndarray, np.generic)) and value.dtype != object:
                key = f"env{i}.{name}"
                arrays[key] = np.asarray(value)
                record[name] = {"array": key, "scalar": isinstance(value, np.generic)}
            elif isinstance(value, np.random.Generator):
                record[name] = {"generator": value.bit_generator.state}
            elif isinstance(value, (tuple, list)) and all(isinstance(v, _SCALARS) for v in value):
                record[name] = {"value": list(value), "tuple": isinstance(value, tuple)}
            elif i == len(chain) - 1:
                uncaptured.append(name)
        layers.append(record)
    return EnvSnapshot(layers, arrays, uncaptured)


def restore_env_state(env: gym.Env, snapshot: EnvSnapshot) -> None:
    """Set the recorded attributes on a freshly made env of the same id (no reset needed).

    Raises ValueError if the wrapper chain differs (another env id or other wrappers).
    """
    chain = wrapper_chain(env)
    if len(chain) != len(snapshot.layers):
        raise ValueError(
            f"the env has {len(chain)} wrapper layers, the snapshot {len(snapshot.layers)}"
        )
    for layer, record in zip(chain, snapshot.layers):
        for name, entry in record.items():
            setattr(layer, name, _value(entry, snapshot.arrays))
        # Gymnasium's PassiveEnvChecker (1.4) keeps the first step's (obs, info), not plain data
        # and so not captured, to warn on the second step if an env reuses its buffers. Restored
        # between those two steps (a checkpoint at env step 1), it would compare with None and
        # crash: the warning is about the env's code, and an env of this id was checked already.
        if getattr(layer, "checked_data_reuse", True) is False:
            if getattr(layer, "_previous_data", None) is None:
                layer.checked_data_reuse = True


def _value(entry: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    if "array" in entry:
        arr = arrays[entry["array"]]
        return arr[()] if entry.get("scalar") else arr.copy()
    if "generator" in entry:
        state = entry["generator"]
        generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        generator.bit_generator.state = state
        return generator
    value = entry["value"]
    return tuple(value) if entry.get("tuple") else value
