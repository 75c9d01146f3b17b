"""Capture and restore a Gymnasium env mid-episode, without pickle.

Gymnasium 1.x has no get/set-state API, and ``reward_range``-style metadata is gone too, so this
is generic by construction: it walks the wrapper chain (``TimeLimit -> OrderEnforcing ->
PassiveEnvChecker -> env``) and records every instance attribute that is plain data. For
CartPole that is the physics ``state`` array, ``steps_beyond_terminated``, the env's
``np_random`` generator (bit-generator state) and the TimeLimit's ``_elapsed_steps``: everything
that decides the next observation. Checkpointing only at episode boundaries would be simpler,
but a run killed at an arbitrary step resumes from whatever step its last checkpoint was at.

An attribute holding an object of plain numbers only (NormalizeObservation's running
statistics) is recorded field by field. A table of plain data (dicts, lists and tuples of
numbers, strings and numeric arrays: the toy-text envs' transition table ``P``) is built when the
env is made and is not recorded, only checked: its digest is kept, and ``restore_env_state``
names it if the fresh env's table differs. Envs that keep state elsewhere (a Box2D world, a
MuJoCo model, an emulator, a deque of episode statistics) cannot be captured this way;
``EnvSnapshot.uncaptured`` names such attributes, in any layer, so the caller can say so.

A vector env is captured the same way: its own arrays (autoreset flags, last observations), and
where it steps copies of an env in a loop (gymnasium's SyncVectorEnv), each copy's layers too.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import sys
import types
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from dqn.errors import brief

_SCALARS = (bool, int, float, str, type(None))
# Attributes that describe the env rather than hold its state (and are rebuilt by gym.make).
_NOT_STATE = (gym.Space, gym.envs.registration.EnvSpec)
# A gymnasium wrapper's spaces, metadata and spec where it overrides its env's (None where it
# does not): what a wrapper is, set when it is made. A Space is never recorded (_NOT_STATE), and
# a dict only checked (its digest), so any other record there is none a capture wrote (a number
# there broke the wrapper's observation_space).
_WIRING = frozenset({"_action_space", "_observation_space", "_metadata", "_cached_spec"})
# Gymnasium's wrappers' own records: the keywords a wrapper was made with (rebuilt by gym.make)
# and PassiveEnvChecker's copy of a step's output, kept only to warn about an env's own code.
_NOT_STATE_NAMES = frozenset({"_saved_kwargs", "_previous_data"})
# PassiveEnvChecker's flags of the checks it has run, which only say whether it warns about the
# env's code again: one a checkpoint of another gymnasium lacks (1.0 has no checked_data_reuse)
# changes no step of the run, and is not named as state that may differ.
_CHECKS_DONE = frozenset(
    {"checked_reset", "checked_step", "checked_render", "checked_data_reuse", "close_called"}
)
# What describes an env rather than holds its state (it is rebuilt with the env): a class, a
# dtype, a function or method, an enum member. A callable object may hold state: not here.
_DESCRIPTIONS = (
    type,
    np.dtype,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    functools.partial,
    enum.Enum,
)


# Python's own modules (3.10+ lists them): a class of theirs is never an env's state.
_STANDARD_LIBRARY = frozenset(sys.stdlib_module_names)


class _Plain:
    """The instance layout of a class written in Python over ``object``: only a ``__dict__``."""


class EnvSnapshot(NamedTuple):
    """``layers[i]`` describes wrapper i (0 = outermost); arrays live apart, for an .npz file."""

    layers: list[dict[str, Any]]  # JSON-able: name -> {"value"|"array"|"generator": ...}
    arrays: dict[str, np.ndarray]  # "env{i}.{name}" -> array (numpy scalars as 0-d arrays)
    uncaptured: list[str]  # "Layer.attribute" of state we cannot record, in any layer


def wrapper_chain(env: gym.Env | gym.vector.VectorEnv) -> list[Any]:
    """Every layer of a wrapped env, outermost first: [env, its inner env, ..., unwrapped]. A
    vector env that steps copies of an env in a loop (gymnasium's SyncVectorEnv, which
    ``make_vec`` builds for an env without a vectorized version of its own) is followed by each
    copy's layers in turn: the copies hold the physics, the generators and the time limits."""
    layers = [env]
    while hasattr(layers[-1], "env") and layers[-1] is not layers[-1].unwrapped:
        layers.append(layers[-1].env)
    for copy in _copies(layers[-1]):
        layers += wrapper_chain(copy)
    return layers


def _copies(layer: Any) -> list[gym.Env]:
    """The envs a vector env steps in a loop (its ``envs``), else none."""
    if not isinstance(layer, gym.vector.VectorEnv):
        return []
    envs = vars(layer).get("envs")
    if isinstance(envs, list) and envs and all(isinstance(e, gym.Env) for e in envs):
        return envs
    return []


def capture_env_state(env: gym.Env) -> EnvSnapshot:
    """Everything plain in each layer's ``__dict__``: scalars, arrays, numpy generators."""
    layers, arrays, uncaptured = [], {}, []
    chain = wrapper_chain(env)
    for i, layer in enumerate(chain):
        record: dict[str, Any] = {}
        copies = _copies(layer)
        for name, value in vars(layer).items():
            if name == "env" or name in _NOT_STATE_NAMES or isinstance(value, _NOT_STATE):
                continue
            if copies and value is copies:  # recorded as layers of their own, after this one
                continue
            if isinstance(value, _SCALARS) or _numeric_array(value):
                record[name] = _plain_entry(value, f"env{i}.{name}", arrays)
            elif isinstance(value, np.random.Generator):
                record[name] = {"generator": _listed(value.bit_generator.state)}
            elif isinstance(value, (tuple, list)) and all(isinstance(v, _SCALARS) for v in value):
                record[name] = {"value": list(value), "tuple": isinstance(value, tuple)}
            elif isinstance(value, list) and all(_numeric_array(v) for v in value):
                # SyncVectorEnv's copies' last observations, one array each
                keys = [f"env{i}.{name}.{k}" for k in range(len(value))]
                arrays.update(zip(keys, map(np.asarray, value)))
                record[name] = {"arrays": keys}
            elif (copies and name == "env_fns") or (
                isinstance(value, (tuple, list))
                and all(isinstance(v, _DESCRIPTIONS) for v in value)
            ):  # the functions that made a vector env's copies: rebuilt with it (gymnasium 1.0
                # keeps them as the generator make_vec passed, spent)
                continue
            elif name == "metadata" and isinstance(value, dict):  # render modes, autoreset mode
                continue
            elif (fields := _plain_fields(value)) is not None:
                # An object of plain numbers (NormalizeObservation's running mean, variance and
                # count): its class and fields, set back on the fresh env's own object of that
                # name, or on a new one where the env makes it only on its first reset.
                kind = type(value)
                record[name] = {"fields": {}, "class": f"{kind.__module__}:{kind.__qualname__}"}
                for field, item in fields.items():
                    key = f"env{i}.{name}.{field}"
                    record[name]["fields"][field] = _plain_entry(item, key, arrays)
            elif (digest := _table_digest(value)) is not None:
                record[name] = {"digest": digest}  # checked on restore, not set
            elif not isinstance(value, _DESCRIPTIONS):
                uncaptured.append(f"{type(layer).__name__}.{name}")
        layers.append(record)
    return EnvSnapshot(layers, arrays, uncaptured)


def _listed(state: Any) -> Any:
    """A bit generator's state with its arrays as lists, for JSON: MT19937's key, Philox's
    counter and SFC64's state are arrays (a run of an env holding such a generator stopped at
    its first checkpoint with "Object of type ndarray is not JSON serializable")."""
    if isinstance(state, dict):
        return {key: _listed(value) for key, value in state.items()}
    return state.tolist() if isinstance(state, np.ndarray) else state


def _numeric_array(value: Any) -> bool:
    """A numpy array or scalar of numbers (not of Python objects)."""
    return isinstance(value, (np.ndarray, np.generic)) and value.dtype != object


def _plain_entry(value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A scalar's or array's record: in the JSON if a Python value, else an array under
    ``key`` (numpy scalars as 0-d arrays, marked to come back as scalars)."""
    if isinstance(value, _SCALARS):
        return {"value": value}
    arrays[key] = np.asarray(value)
    return {"array": key, "scalar": isinstance(value, np.generic)}


# The most items (containers, keys and values) a table may hold to be checked by its digest:
# a larger one is named as uncaptured rather than hashed at every checkpoint and resume.
# FrozenLake 8x8's P holds 4,041 and Taxi's 22,001, hashed in about 5 and 18 ms (100,000 floats
# in a list: 0.1 s) on one core of a 2-core EPYC.
TABLE_ITEMS = 100_000


def _table_digest(value: Any) -> str | None:
    """A SHA-256 of a dict, list or tuple that holds only such containers, scalars and numeric
    arrays (in order: the same table built the same way), or None for anything else."""
    if not isinstance(value, (dict, list, tuple)):
        return None
    digest, stack, items = hashlib.sha256(), [value], 0
    while stack:
        item = stack.pop()
        items += 1
        if items > TABLE_ITEMS:
            return None
        if isinstance(item, dict):
            digest.update(b"d%d;" % len(item))
            for key, inner in reversed(item.items()):
                stack += [inner, key]
        elif isinstance(item, (list, tuple)):
            digest.update(b"%s%d;" % (b"l" if isinstance(item, list) else b"t", len(item)))
            stack += reversed(item)
        elif isinstance(item, _SCALARS):
            digest.update(f"{type(item).__name__}:{item!r};".encode())
        elif _numeric_array(item):
            array = np.asarray(item)
            digest.update(f"{type(item).__name__}:{array.dtype.str}{array.shape};".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        else:
            return None
    return digest.hexdigest()


def _plain_fields(value: Any) -> dict[str, Any] | None:
    """The attributes of an object that holds numbers and numeric arrays only, else None. Its
    state must all be in its ``__dict__``: a C base keeps state there that it does not show
    (``random.Random``'s generator, beside a ``gauss_next`` float)."""
    fields = getattr(value, "__dict__", None)
    if not isinstance(fields, dict) or not fields or isinstance(value, type):
        return None
    if type(value).__basicsize__ != _Plain.__basicsize__:  # a C base's (or slots') own fields
        return None
    plain = all(isinstance(v, (int, float)) or _numeric_array(v) for v in fields.values())
    return dict(fields) if plain else None


def restore_env_state(env: gym.Env, snapshot: EnvSnapshot) -> list[str]:
    """Set the recorded attributes on a freshly made env of the same id (no reset needed).

    Returns the snapshot's uncaptured state, as "Layer.attribute" each checked table of the
    fresh env that differs from the one captured, and each attribute the fresh env records that
    the snapshot does not hold (an env edited since, a wrapper of a newer gymnasium): what the
    resumed env may not hold as it was.

    Raises ValueError, before anything is set, if the wrapper chain differs (another env id or
    other wrappers) or a record is not one ``capture_env_state`` writes: an entry of another
    layout, a name that is a method, a property or the env's own wiring (a wrapper's ``env``,
    its spaces, the metadata), fields for what holds none. A checkpoint is read as data; under
    a valid manifest such records set an env's attributes to anything, and the resumed run
    failed steps later with a traceback. A value's kind is not compared with the fresh env's:
    an env's attribute may hold 0 when it is made and an array, a generator or an object later.
    """
    chain = wrapper_chain(env)
    layers, uncaptured = snapshot.layers, snapshot.uncaptured
    if not isinstance(layers, list) or not all(isinstance(r, dict) for r in layers):
        raise ValueError("its recorded env state is not a list of layers of attributes")
    if not isinstance(uncaptured, list) or not all(isinstance(n, str) for n in uncaptured):
        raise ValueError("its list of uncaptured env state is not a list of names")
    if len(chain) != len(layers):
        raise ValueError(f"the env has {len(chain)} wrapper layers, the snapshot {len(layers)}")
    fresh = capture_env_state(env)
    unrestored = list(uncaptured)
    settings: list[tuple[Any, str, Any]] = []  # set once every record has been read
    for layer, record, had in zip(chain, layers, fresh.layers):
        where = type(layer).__name__
        for name, entry in record.items():
            _check_name(layer, name, where)
            what = f"{where}.{name}"
            if (where, name, entry) == ("PassiveEnvChecker", "_previous_data", {"value": None}):
                continue  # an older dqn's record of the checker's copy, None by then: no state
            if not isinstance(entry, dict) or not _ENTRY_KINDS & entry.keys():
                raise ValueError(f"its recorded {what} is not an entry dqn writes")
            if _wiring(layer, name, entry):
                raise ValueError(f"its recorded {what} is not state dqn restores")
            if "digest" in entry:  # the fresh env's table, hashed by its capture above
                if had.get(name, {}).get("digest") != entry["digest"]:
                    unrestored.append(what)
                continue
            if "fields" not in entry:
                settings.append((layer, name, _value(entry, snapshot.arrays, what)))
                continue
            if not isinstance(entry["fields"], dict):
                raise ValueError(f"its recorded {what} has no mapping of fields")
            if (target := vars(layer).get(name)) is None:  # made on the first reset
                if not isinstance(entry.get("class"), str):
                    raise ValueError(f"its recorded {what} names no class")
                target = object.__new__(_recorded_class(entry["class"]))
                settings.append((layer, name, target))
            elif not _plain_layout(target):  # a dict, a number: no fields to set
                raise ValueError(
                    f"its recorded {what} holds fields, and the env's is {type(target).__name__}"
                )
            for field, item in entry["fields"].items():
                _check_name(target, field, what)
                if not isinstance(item, dict) or not ({"value", "array"} & item.keys()):
                    raise ValueError(f"its recorded {what}.{field} is not a number or an array")
                settings.append((target, field, _value(item, snapshot.arrays, f"{what}.{field}")))
        unrestored += [
            f"{where}.{name}"
            for name in had
            if name not in record and not (where == "PassiveEnvChecker" and name in _CHECKS_DONE)
        ]
    for target, name, value in settings:
        setattr(target, name, value)
    for layer in chain:
        # Gymnasium's PassiveEnvChecker (1.4) keeps the first step's (obs, info), not plain
        # data and so not captured, to warn on the second step if an env reuses its buffers.
        # Restored between those two steps (a checkpoint at env step 1), it would compare with
        # None and crash: the warning is about the env's code, and an env of this id was checked.
        if getattr(layer, "checked_data_reuse", True) is False:
            if getattr(layer, "_previous_data", None) is None:
                layer.checked_data_reuse = True
    return unrestored


# The keys that say what a record is (``_plain_entry``'s, the lists', a generator, an object,
# a table's digest).
_ENTRY_KINDS = frozenset({"value", "array", "arrays", "generator", "fields", "digest"})


def _check_name(owner: Any, name: Any, where: str) -> None:
    """ValueError unless ``name`` may be set on ``owner`` as data: not a dunder, not a method,
    a property or another descriptor of its class (a recorded ``step`` hid the env's method),
    but for a ``functools.cached_property``, whose value lives in the instance as state does."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        raise ValueError(f"its recorded state of {where} names {brief(name)}, no attribute")
    found = inspect.getattr_static(type(owner), name, None)
    if isinstance(found, functools.cached_property):
        return
    if callable(found) or hasattr(type(found), "__get__") and not isinstance(found, _SCALARS):
        raise ValueError(f"its recorded state of {where} names {name}, a method of the env's")


def _wiring(layer: Any, name: str, entry: dict[str, Any]) -> bool:
    """True if ``name`` is what ``capture_env_state`` never records by design, so that no
    record of it is one it wrote: a wrapper's inner env, a vector env's copies and their
    makers, the metadata, a space, a spec, a function; and a wrapper's own spaces, metadata or
    spec (None unless it overrides its env's) as anything but None or a checked dict."""
    current = inspect.getattr_static(layer, name, None)  # runs no property of the env's
    if name in ("env", "env_fns", *_NOT_STATE_NAMES) or name == "envs" and _copies(layer):
        return True
    if name == "metadata" and isinstance(current, dict) or isinstance(current, _NOT_STATE):
        return True
    if isinstance(current, _DESCRIPTIONS):
        return True
    kept = "digest" in entry or "value" in entry and entry["value"] is None
    return name in _WIRING and not kept


def _plain_layout(value: Any) -> bool:
    """An object whose fields live in its ``__dict__`` alone (a class written in Python)."""
    return isinstance(getattr(value, "__dict__", None), dict) and (
        type(value).__basicsize__ == _Plain.__basicsize__
    )


def unrestored_warning(env_id: str, unrestored: list[str], resumed: str) -> str:
    """The resume's warning for what ``restore_env_state`` could not set back."""
    return (
        f"{env_id} keeps state in {', '.join(dict.fromkeys(unrestored))}, which the checkpoint "
        f"does not restore: {resumed} may differ from an uninterrupted one"
    )


def _recorded_class(path: str) -> type:
    """The class ``module:qualname`` names, if it may be made again; ValueError if not.

    A checkpoint is data, and restoring it must run no code it names: the class has to be in a
    module loaded already (nothing is imported here), not of Python's standard library, with the
    plain layout ``capture_env_state`` records and no ``__del__``. Any class would let a
    checkpoint pick one that acts on its fields when collected (tempfile's closer of a temporary
    file deletes the file its ``name`` holds). An env's own helpers (gymnasium's
    ``RunningMeanStd``, a class of the user's) pass."""
    module, _, qualname = path.partition(":")
    found: Any = sys.modules.get(module)
    for part in qualname.split(".") if found is not None else ():
        # As stored: no module's __getattr__ nor a metaclass's property runs for a checkpoint.
        found = inspect.getattr_static(found, part, None)
    if not isinstance(found, type):
        raise ValueError(
            f"the class {path} of its recorded state cannot be found in the modules the env "
            "has loaded"
        )
    if found.__module__.partition(".")[0] in _STANDARD_LIBRARY:
        raise ValueError(f"the class {path} of its recorded state is of Python's own library")
    if found.__basicsize__ != _Plain.__basicsize__ or any(
        "__del__" in vars(base) for base in found.__mro__[:-1]
    ):
        raise ValueError(f"the class {path} of its recorded state is not a plain object of numbers")
    return found


def generator_from_state(state: Any) -> np.random.Generator:
    """A numpy Generator set to a recorded ``bit_generator.state``; ValueError unless the state
    names one of numpy's bit generators (a name is looked up in ``np.random``, where ``test``
    runs numpy's test suite and ``seed`` reseeds its global generator)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    kind = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
        raise ValueError(f"its generator's bit_generator {name!r} is not numpy's")
    generator = np.random.Generator(kind())
    try:  # numpy's own checks of the state: its keys and their types
        generator.bit_generator.state = state
    except Exception as exc:
        raise ValueError(f"its generator's state is not one of {name}'s: {brief(exc)}") from None
    # And the positions numpy does not check, which index the generator's own buffers: an
    # MT19937 state at position 10**6 crashed the process at its first draw.
    position = {"MT19937": ("state", "pos", 624), "Philox": (None, "buffer_pos", 4)}.get(name)
    if position is not None:
        inner, key, most = position
        held = generator.bit_generator.state
        at = (held[inner] if inner else held)[key]
        if not 0 <= at <= most:
            raise ValueError(f"its generator's {key} is {at}, not in [0, {most}]")
    return generator


def _value(entry: dict[str, Any], arrays: dict[str, np.ndarray], what: str) -> Any:
    """The value of a record (``_plain_entry``'s and the lists'); ValueError naming ``what``
    where the record is not one of those, or names an array the checkpoint does not hold."""

    def array(key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in arrays:
            raise ValueError(f"its recorded {what} names an array loop.npz does not hold")
        return arrays[key]

    if "arrays" in entry:
        if not isinstance(entry["arrays"], list):
            raise ValueError(f"its recorded {what} is not a list of arrays")
        return [array(key).copy() for key in entry["arrays"]]
    if "array" in entry:
        arr = array(entry["array"])
        if entry.get("scalar") and arr.ndim:
            raise ValueError(f"its recorded {what} is a scalar held as an array of {arr.shape}")
        return arr[()] if entry.get("scalar") else arr.copy()
    if "generator" in entry:
        try:
            return generator_from_state(entry["generator"])
        except ValueError as exc:
            raise ValueError(f"its recorded {what}: {exc}") from None
    value, listed = entry["value"], "tuple" in entry  # a list or tuple is written with its kind
    items = value if listed and isinstance(value, list) else [value]
    if listed != isinstance(value, list) or not all(isinstance(v, _SCALARS) for v in items):
        raise ValueError(f"its recorded {what} is not a number, a text or a list of them")
    return tuple(value) if entry.get("tuple") else value
