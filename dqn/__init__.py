"""dqn: a small, fast and honest TensorFlow DQN, with a numpy backprop lab beside it.

The public API is five names::

    from dqn import DQNAgent, DQNConfig, train, TrainResult, train_population

(``train_population`` trains many seeds and variants in one program; ``dqn.population`` has its
``Member`` and ``resume_population``.)

They are imported lazily (PEP 562) so that ``import dqn.backprop`` and
``import dqn.config`` never pay for, or depend on, a TensorFlow import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dqn.runtime import settle_process_environment

# Before anything imports Keras or TensorFlow: dqn runs Keras on TensorFlow, whatever a
# user's Keras or matplotlib settings for other projects say (``dqn.runtime``).
settle_process_environment()

if TYPE_CHECKING:  # a type checker or an IDE sees each name's own type; at run time, _LAZY
    from dqn.agent import DQNAgent
    from dqn.config import DQNConfig
    from dqn.loop import TrainResult, train
    from dqn.population import train_population

__version__ = "0.1.0"
__all__ = ["DQNAgent", "DQNConfig", "TrainResult", "train", "train_population"]

_LAZY = {
    "DQNAgent": "dqn.agent",
    "DQNConfig": "dqn.config",
    "TrainResult": "dqn.loop",
    "train": "dqn.loop",
    "train_population": "dqn.population",
}


def __getattr__(name: str):
    import importlib.util

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    # A submodule too (``dqn.loop.resume``, ``dqn.export.export_policy``), imported on first use
    # as the docs write them, rather than an AttributeError until it is imported by name.
    if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"dqn.{name}"):
        return importlib.import_module(f"dqn.{name}")
    raise AttributeError(f"module 'dqn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
