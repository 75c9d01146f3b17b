"""dqn: a small, fast and honest TensorFlow DQN, with a numpy backprop lab beside it.

The public API is five names::

    from dqn import DQNAgent, DQNConfig, train, TrainResult, train_population

(``train_population`` trains many seeds and variants in one program; ``dqn.population`` has its
``Member`` and ``resume_population``.)

They are imported lazily (PEP 562) so that ``import dqn.backprop`` and
``import dqn.config`` never pay for, or depend on, a TensorFlow import.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

# dqn runs Keras on TensorFlow. Keras takes its backend once, when it is first imported, from
# KERAS_BACKEND, else ~/.keras/keras.json: set to jax or torch for a user's other projects, it
# made every dqn command fail with Keras's own traceback ("No module named 'jax'"). Imported
# before Keras, dqn sets the variable for its process (and the processes it starts); a Keras
# imported earlier on another backend is refused where dqn first needs TensorFlow
# (``dqn.runtime.check_keras_backend``).
if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "tensorflow"


def _drop_an_unusable_matplotlib_backend() -> None:
    """Keras imports matplotlib.pyplot as TensorFlow loads it, and matplotlib refuses at its
    import an MPLBACKEND it does not know: a Jupyter kernel's terminals and ``!`` commands have
    ``module://matplotlib_inline.backend_inline``, which dqn's environment may lack, and every
    command failed in TensorFlow's import. dqn draws to files only, so such a value is dropped
    for its process; one matplotlib takes is kept."""
    wanted = os.environ.get("MPLBACKEND")
    if not wanted or "matplotlib" in sys.modules:
        return
    del os.environ["MPLBACKEND"]
    try:
        import matplotlib

        matplotlib.rcParams["backend"] = wanted  # the check matplotlib's import makes of it
    except Exception:  # ValueError, or an ImportError from the backend's module
        return
    os.environ["MPLBACKEND"] = wanted


_drop_an_unusable_matplotlib_backend()

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
