"""The learner contract: what runs the gradient steps, whichever backend computes them.

A learner owns the parameters of the online and target networks and Adam's state, all as flat
float32 vectors of P parameters (the layout of ``dqn.networks.FlatNetwork``), and offers:

- ``burst(rows) -> metrics``: K gradient steps on packed replay rows [K, B, W]
  (``dqn.replay.row_layout``), returning STEP_METRICS (``dqn.step_metrics``) averaged over the
  burst, or their maximum for the "max" ones;
- ``online``: the current online parameters as a numpy vector (the agent acts with them);
- ``state``: every array that decides the next update, as a ``LearnerArrays`` (read it to save,
  assign it to restore);
- ``grad_steps``: gradient steps taken so far;
- ``probe_gradient(batch) -> grads [P]``: the flat loss gradient of one batch (a
  ``dqn.replay.Batch``) at the current parameters, nothing updated: what the per-layer
  gradient-norm diagnostics read, computed by the backend that computes the updates (its
  rounding, its threads, its process);
- ``start()`` / ``stop()``: called by the training loop around a run. A learner that computes
  in another process (``dqn.learner_process.ProcessLearner``) starts it before the clock and,
  at the end, takes its state back and ends it, so that the agent a run returns holds no
  process; a learner in the calling process has nothing to start (``InProcess``).

Two implementations compute the same update: ``dqn.tf_learner.TFLearner`` (TensorFlow, XLA;
any Keras network) and ``dqn.numpy_learner.NumpyLearner`` (numpy, an explicit backward pass;
a chain of Dense layers). They agree to float32 rounding, not bit for bit (tests hold them
equal). No TensorFlow import here.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def probe_gradient(self, batch) -> np.ndarray: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class InProcess:
    """``start`` and ``stop`` of a learner that computes in the calling process: nothing to
    acquire before a run, nothing to hand back after it."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class PopulationLearner(Protocol):
    """The contract for M members trained in one program (``dqn.population``).

    Each member has its own parameters, target, Adam state and gradient-step count, stacked on
    a leading member axis, and its own update settings (``dqn.members.MemberSettings``). Nothing
    couples members: a member's numbers depend only on its own state and rows.

    - ``burst(rows, active) -> metrics``: K gradient steps for every active member on packed
      rows [M, K, B, W]; returns STEP_METRICS per member [M, n] (mean or max over the burst).
      An inactive member (``active[m]`` False: stopped by the divergence guard, a NaN from its
      env or on_eval) is left exactly as it was; its metrics row is NaN.
    - ``online``: [M, P] online parameters (acting reads them).
    - ``member_state(m)`` / ``set_member_state(m, arrays)``: one member's ``LearnerArrays``.
    - ``grad_steps``: [M] gradient steps taken per member.
    """

    online: np.ndarray

    def burst(self, rows: np.ndarray, active: np.ndarray) -> np.ndarray: ...

    def member_state(self, m: int) -> LearnerArrays: ...

    def set_member_state(self, m: int, state: LearnerArrays) -> None: ...

    @property
    def grad_steps(self) -> np.ndarray: ...


def mlp_forward_flops(batch: int, sizes: Sequence[int]) -> int:
    """Matmul FLOPs of one forward pass of an MLP with layer widths ``sizes`` (input first).

    [m, k] x [k, n] is m*n dot products of length k: 2*m*k*n FLOPs (a multiply and an add each).
    Bias adds and activations are O(m*n) and left out.
    """
    return sum(2 * batch * k * n for k, n in zip(sizes[:-1], sizes[1:]))


def grad_step_flops(
    obs_dim: int, hidden_sizes: Sequence[int], n_actions: int, batch: int, double_dqn: bool = False
) -> int:
    """Matmul FLOPs of one DQN gradient step on a batch.

    Forward of the online net on s_tm1, forward of the target net on s_t (and of the online net
    on s_t too for double DQN), then backward through the online net: per layer dW = x^T dout
    costs one forward's worth, dx = dout W^T another, except at the input layer, where no dx is
    needed. So backward is a little under twice the forward.
    """
    sizes = [obs_dim, *hidden_sizes, n_actions]
    forward = mlp_forward_flops(batch, sizes)
    backward = 2 * forward - 2 * batch * sizes[0] * sizes[1]
    next_forwards = 2 if double_dqn else 1
    return forward * (1 + next_forwards) + backward


__all__ = [
    "InProcess",
    "Learner",
    "LearnerArrays",
    "PopulationLearner",
    "grad_step_flops",
    "mlp_forward_flops",
]
