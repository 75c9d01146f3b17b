"""The TensorFlow learner in a fresh process, for a process whose TensorFlow already runs.

Why: TensorFlow fixes its thread pools at its first operation. In a notebook or a project with
TensorFlow code of its own they are fixed before ``dqn`` can ask for ``num_threads`` (one, by
default), and with two threads XLA splits the small matrices of a DQN's update across both:
some processes then run the burst faster, others several times slower, decided at start-up
(README, "Use it in your own project"). A fresh process sets its pools before its first
operation, as the command line does, so the learner there runs exactly as in ``dqn-train``:
same program, same threads, same bits.

``ProcessLearner`` keeps the learner contract (``dqn.learner``). It holds the state itself until
the first burst (loading, saving and acting start no process; ``diagnose``'s gradient probe
does, since its norms are the learner's); ``start`` launches
the process, which ``train`` does before its clock starts, as a fresh command-line process also
imports TensorFlow before it trains. Each burst sends the packed rows and gets the metrics and
the online parameters back (a few hundred kB through a socket: well under a millisecond against
tens of milliseconds of gradient steps).

The child is ``python -m dqn.learner_process FD`` (not ``multiprocessing``: spawning would run a
user's unguarded script again). It serves one socket and ends when it closes. No TensorFlow
import here in the parent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from dqn.learner import LearnerArrays, grad_step_flops


class LearnerProcessError(RuntimeError):
    """The learner process failed or ended; the message says how."""


def supported() -> bool:
    """Sockets passed to a child by descriptor: POSIX only."""
    return os.name == "posix"


# A burst below this many matmul FLOPs stays in the caller's process: each burst's round trip
# through the socket costs ~0.25 ms and more with the bytes, more than TensorFlow's fixed
# threads cost a small network's short burst (``python -m benchmarks.learner_process_cost``,
# TensorFlow run first: [64, 64], batch 64, one step per burst, 0.27 ms in place, 0.52 ms
# through the process). Long bursts of a large network are where the fixed threads made
# training erratic (README, "Use it in your own project").
MIN_BURST_FLOP = 1e9


def burst_flop(config, shapes) -> int:
    """Matmul FLOPs of one burst of a Dense chain with these parameter shapes
    (``dqn.learner.grad_step_flops`` per gradient step; other layers are not counted)."""
    kernels = [s for s in shapes if len(s) == 2]
    if not kernels:
        return 0
    widths = [kernels[0][0], *(k[1] for k in kernels)]
    per_step = grad_step_flops(
        widths[0], widths[1:-1], widths[-1], config.batch_size, config.double_dqn
    )
    return config.gradient_steps_per_train * per_step


def worth_a_process(config, shapes) -> bool:
    """True if a burst is long enough for the process to pay (see MIN_BURST_FLOP)."""
    return burst_flop(config, shapes) >= MIN_BURST_FLOP


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _shutdown(proc: subprocess.Popen, conn: Connection) -> None:
    try:
        conn.close()  # the child's recv ends: it exits
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ProcessLearner:
    """The learner contract, served by ``dqn.tf_learner.TFLearner`` in a fresh process."""

    def __init__(self, config, obs_dim: int, n_actions: int, online: np.ndarray) -> None:
        self._config, self._sizes = config, (obs_dim, n_actions)
        online = np.array(online, np.float32)
        zeros = np.zeros_like(online)
        self._state = LearnerArrays(online, online.copy(), zeros, zeros.copy(), np.float32(0), 0)
        self.online = online
        self._conn: Connection | None = None

    # ------------------------------------------------------------------ process
    @property
    def started(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        """Launch the learner process with the current state and wait until it is ready."""
        if self._conn is not None:
            return
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_package_root(), env.get("PYTHONPATH")) if p
        )
        with theirs:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno()), str(self._config.num_threads)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                # Its own session: Ctrl-C in a terminal reaches the training process, whose
                # handler stops at a checkpoint, which needs the learner's state still here.
                start_new_session=True,
            )
        self._proc = proc
        self._conn = Connection(ours.detach())
        self._finalizer = weakref.finalize(self, _shutdown, proc, self._conn)
        try:
            self._ask("init", (self._config, self._sizes, self._state))
        except LearnerProcessError:
            self.close()  # the state stays here; a later call may try again
            raise
        self._grad_steps = self._state.grad_steps
        self._state = None  # the process holds it from now on

    def stop(self) -> None:
        """Take the state back and end the process (a later burst starts a new one)."""
        if self._conn is not None:
            state = self._ask("state")
            self.close()
            self._state = state

    def close(self) -> None:
        """End the process, state and all (also done when the learner is garbage collected)."""
        if self._conn is not None:
            self._finalizer()
            self._conn = None

    def _ask(self, op: str, arg=None):
        try:
            self._conn.send((op, arg))
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.poll()
            raise LearnerProcessError(
                f"the learner process ended unexpectedly (exit code {code})"
            ) from None
        if kind == "error":
            raise LearnerProcessError(f"the learner process failed: {payload}")
        return payload

    # ------------------------------------------------------------------ contract
    def burst(self, rows: np.ndarray) -> np.ndarray:
        self.start()
        metrics, self.online, self._grad_steps = self._ask("burst", rows)
        return metrics

    @property
    def state(self) -> LearnerArrays:
        return self._state if self._conn is None else self._ask("state")

    @state.setter
    def state(self, state: LearnerArrays) -> None:
        state = LearnerArrays(
            *(np.array(a, np.float32) for a in state[:4]),
            np.float32(state.adam_step),
            int(state.grad_steps),
        )
        if self._conn is None:
            self._state = state
        else:
            self._ask("set_state", state)
            self._grad_steps = state.grad_steps
        self.online = state.online

    @property
    def grad_steps(self) -> int:
        return self._state.grad_steps if self._conn is None else self._grad_steps

    def probe_gradient(self, batch) -> np.ndarray:
        """``TFLearner.probe_gradient`` at the current state, computed in the process."""
        self.start()
        return self._ask("probe_gradient", batch)


# ---------------------------------------------------------------------- the child
def _build(config, sizes, state):
    """The learner ``DQNAgent`` builds, in a fresh process, with this state."""
    from dqn import losses
    from dqn.networks import FlatNetwork, build_mlp
    from dqn.runtime import configure_runtime
    from dqn.tf_learner import TFLearner

    configure_runtime(config)
    obs_dim, n_actions = sizes
    model = build_mlp(obs_dim, n_actions, config.hidden_sizes, config.activation, config.seed)
    net = FlatNetwork(model)
    learner = TFLearner(net.forward, losses.get(config.loss), config, obs_dim, state.online)
    learner.state = state
    return learner


def _serve(conn: Connection) -> None:
    learner = None
    while True:
        try:
            op, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "init":
                learner = _build(*arg)
                out = None
            elif op == "probe_gradient":
                out = learner.probe_gradient(arg)
            elif op == "burst":
                metrics = learner.burst(arg)
                out = (metrics, learner.online, learner.grad_steps)
            elif op == "state":
                out = learner.state
            elif op == "set_state":
                learner.state = arg
                out = None
            else:
                raise ValueError(f"unknown request {op!r}")
            reply = ("ok", out)
        except Exception as exc:  # sent back whole: the parent raises it as one line
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except OSError:  # the training process is gone: nothing left to serve
            return


# The learner process's program. ``-m`` and ``-c`` put the current folder first on its
# sys.path, so a numpy.py or yaml.py of the user's there was imported in place of the package
# (the training process, started from a script, never looked there) and the process died. It
# drops that entry (PYTHONSAFEPATH, where set, keeps it out already).
_CHILD = (
    "import sys\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "from dqn.learner_process import main\n"
    "main()\n"
)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    import signal

    from dqn.runtime import import_tensorflow_quietly

    # Interrupts are the training process's to handle: this one ends when its socket closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    # Before the first operation, as the command line does: the whole point of this process.
    import_tensorflow_quietly(int(argv[1]))
    _serve(Connection(int(argv[0])))


if __name__ == "__main__":
    main()
