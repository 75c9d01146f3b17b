"""dqn: a small, fast and honest TensorFlow DQN, with a numpy backprop lab beside it.

The public API is four names::

    from dqn import DQNAgent, DQNConfig, train, TrainResult

They are imported lazily (PEP 562) so that ``import dqn.backprop`` and
``import dqn.config`` never pay for, or depend on, a TensorFlow import.
"""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"
__all__ = ["DQNAgent", "DQNConfig", "TrainResult", "train"]

_LAZY = {
    "DQNAgent": "dqn.agent",
    "DQNConfig": "dqn.config",
    "TrainResult": "dqn.train",
    "train": "dqn.train",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Importing the submodule dqn.train binds the *module* to dqn.train; rebind the name to
        # the function so that `from dqn import train` and `dqn.train(...)` both get the function.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dqn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)


class _Package(types.ModuleType):
    """Keeps ``dqn.train`` the function, whatever imports the submodule ``dqn.train`` first.

    Loading a submodule binds it as an attribute of its package, so ``import dqn.train`` (or any
    module that imports from it) would otherwise turn ``dqn.train`` into the module, and a later
    ``from dqn import train`` would return a module instead of the function.
    """

    def __setattr__(self, name: str, value) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            value = value.train
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
