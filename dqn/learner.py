"""The learner contract: what runs the gradient steps, whichever backend computes them.

A learner owns the parameters of the online and target networks and Adam's state, all as flat
float32 vectors of P parameters (the layout of ``dqn.networks.FlatNetwork``), and offers:

- ``burst(rows) -> metrics``: K gradient steps on packed replay rows [K, B, W]
  (``dqn.replay.row_layout``), returning STEP_METRICS (``dqn.step_metrics``) averaged over the
  burst, or their maximum for the "max" ones;
- ``online``: the current online parameters as a numpy vector (the agent acts with them);
- ``state``: every array that decides the next update, as a ``LearnerArrays`` (read it to save,
  assign it to restore);
- ``grad_steps``: gradient steps taken so far.

Two implementations compute the same update: ``dqn.tf_learner.TFLearner`` (TensorFlow, XLA;
any Keras network) and ``dqn.numpy_learner.NumpyLearner`` (numpy, an explicit backward pass;
a chain of Dense layers). They agree to float32 rounding, not bit for bit (tests hold them
equal). No TensorFlow import here.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np


class LearnerArrays(NamedTuple):
    """A learner's state as numpy arrays."""

    online: np.ndarray  # [P] online network parameters
    target: np.ndarray  # [P] target network parameters
    adam_m: np.ndarray  # [P] Adam first moment
    adam_v: np.ndarray  # [P] Adam second moment
    adam_step: np.float32  # Adam's step count (bias correction)
    grad_steps: int  # gradient steps taken (learning-rate schedule, target sync)


class Learner(Protocol):
    online: np.ndarray

    def burst(self, rows: np.ndarray) -> np.ndarray: ...

    @property
    def state(self) -> LearnerArrays: ...

    @state.setter
    def state(self, state: LearnerArrays) -> None: ...

    @property
    def grad_steps(self) -> int: ...


__all__ = ["Learner", "LearnerArrays"]
