"""Measuring ``dqn`` against Stable-Baselines3: settings, FLOP counts, a step clock, workers.

Used by ``scripts/bench.py`` (``make bench``); ``import dqn`` never imports this module.
TensorFlow, torch and Stable-Baselines3 are imported inside the worker functions only, and each
library runs in its own process (``python -m dqn.bench JOB_JSON``, one JSON line back on stdout),
so the two frameworks never share a process and each one's thread setting applies cleanly.

Both libraries are timed the same way: their training env is wrapped in ``StepClock``, which
records the wall time after every env step. Time between two steps therefore holds everything a
library does per step (acting, replay, updates, its own bookkeeping). Where a run evaluates
(regime d), evaluation time is taken out: for dqn by subtracting the windows during which its
separate evaluation env was running, for SB3 by the callback that runs the evaluations.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym

RESULT_PREFIX = "BENCH_RESULT "
INSTALL_HINT = (
    'the benchmark needs the optional "bench" extra (Stable-Baselines3 and torch): '
    'run `pip install -e ".[bench]"` or `make bench`'
)
EXTRA_MODULES = ("torch", "stable_baselines3")


def missing_extra() -> str | None:
    """The install hint if torch or Stable-Baselines3 cannot be imported, else None."""
    if all(importlib.util.find_spec(name) is not None for name in EXTRA_MODULES):
        return None
    return INSTALL_HINT


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """One regime's hyperparameters, in library-neutral units (env steps unless named)."""

    total_env_steps: int
    hidden_sizes: tuple[int, ...]
    batch_size: int
    learning_rate: float
    buffer_size: int
    learning_starts_env_steps: int
    train_every_env_steps: int
    gradient_steps_per_train: int
    target_update_every_env_steps: int
    epsilon_end: float
    epsilon_decay_fraction: float
    loss: str
    """"huber" (SB3's smooth_l1, delta 1) or "l2" (dqn's 0.5 e^2)."""
    max_grad_norm: float | None
    gamma: float = 0.99
    epsilon_start: float = 1.0
    adam_epsilon: float = 1e-8
    """torch.optim.Adam's default, which SB3 and CleanRL use."""
    env_id: str = "CartPole-v1"

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Settings":
        return cls(**{**data, "hidden_sizes": tuple(data["hidden_sizes"])})


# rl-baselines3-zoo's CartPole-v1 DQN hyperparameters (all else at SB3 defaults: tau 1, Huber,
# max_grad_norm 10, Adam).
ZOO = Settings(
    total_env_steps=50_000, hidden_sizes=(256, 256), batch_size=64, learning_rate=2.3e-3,
    buffer_size=100_000, learning_starts_env_steps=1_000, train_every_env_steps=256,
    gradient_steps_per_train=128, target_update_every_env_steps=10, epsilon_end=0.04,
    epsilon_decay_fraction=0.16, loss="huber", max_grad_norm=10.0,
)
# One gradient step after every env step, a small net, a hard target copy every 500 env steps.
EVERY_STEP = ZOO.replace(
    hidden_sizes=(64, 64), train_every_env_steps=1, gradient_steps_per_train=1,
    target_update_every_env_steps=500,
)
EVERY_4_STEPS = EVERY_STEP.replace(train_every_env_steps=4)
# CleanRL dqn.py defaults. Its loss is F.mse_loss = mean(e^2); dqn's l2 is 0.5 e^2, so dqn's
# gradient is half of CleanRL's, which Adam's per-parameter scaling cancels (up to its epsilon).
CLEANRL = Settings(
    total_env_steps=100_000, hidden_sizes=(120, 84), batch_size=128, learning_rate=2.5e-4,
    buffer_size=10_000, learning_starts_env_steps=10_000, train_every_env_steps=10,
    gradient_steps_per_train=1, target_update_every_env_steps=500, epsilon_end=0.05,
    epsilon_decay_fraction=0.5, loss="l2", max_grad_norm=None,
)


def grad_steps_within(s: Settings, env_steps: int | None = None) -> int:
    """Gradient steps taken in the first ``env_steps`` env steps (default: the whole run).

    A burst follows every env step that is a multiple of train_every and past learning_starts,
    in dqn and in SB3 alike (SB3 collects train_freq steps, then trains if past learning_starts).
    """
    n = s.total_env_steps if env_steps is None else env_steps
    every = s.train_every_env_steps
    bursts = n // every - s.learning_starts_env_steps // every
    return max(bursts, 0) * s.gradient_steps_per_train


def target_update_every_grad_steps(s: Settings) -> int:
    """The env-step target period of SB3 and CleanRL, in dqn's unit (gradient steps).

    SB3 syncs the target in its per-env-step hook, which runs while collecting, never inside a
    burst of gradient steps: any period up to the burst spacing is one sync per burst. Longer
    periods must be whole numbers of bursts, or the two libraries would sync at different times.
    """
    period, every = s.target_update_every_env_steps, s.train_every_env_steps
    if period <= every:
        return s.gradient_steps_per_train
    if period % every:
        raise ValueError(f"target period {period} is not a multiple of train_every {every}")
    return period // every * s.gradient_steps_per_train


def dqn_overrides(s: Settings) -> dict[str, Any]:
    """DQNConfig fields that make a dqn run use these settings (the rest stay as configured)."""
    return {
        "env_id": s.env_id,
        "total_env_steps": s.total_env_steps,
        "hidden_sizes": list(s.hidden_sizes),
        "activation": "relu",
        "batch_size": s.batch_size,
        "learning_rate": s.learning_rate,
        "learning_rate_end": None,
        "adam_epsilon": s.adam_epsilon,
        "buffer_size": s.buffer_size,
        "learning_starts_env_steps": s.learning_starts_env_steps,
        "train_every_env_steps": s.train_every_env_steps,
        "gradient_steps_per_train": s.gradient_steps_per_train,
        "target_update_every_grad_steps": target_update_every_grad_steps(s),
        "target_tau": 1.0,
        "double_dqn": False,
        "gamma": s.gamma,
        "loss": s.loss,
        "loss_bound": 1.0,
        "max_grad_norm": s.max_grad_norm,
        "epsilon_start": s.epsilon_start,
        "epsilon_end": s.epsilon_end,
        "epsilon_decay_fraction": s.epsilon_decay_fraction,
    }


def sb3_kwargs(s: Settings, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of ``stable_baselines3.DQN`` for these settings."""
    if s.loss != "huber":
        raise ValueError(f"Stable-Baselines3's DQN only has the Huber loss, not {s.loss!r}")
    return {
        "learning_rate": s.learning_rate,
        "buffer_size": s.buffer_size,
        "learning_starts": s.learning_starts_env_steps,
        "batch_size": s.batch_size,
        "tau": 1.0,
        "gamma": s.gamma,
        "train_freq": s.train_every_env_steps,
        "gradient_steps": s.gradient_steps_per_train,
        "target_update_interval": s.target_update_every_env_steps,
        "exploration_fraction": s.epsilon_decay_fraction,
        "exploration_initial_eps": s.epsilon_start,
        "exploration_final_eps": s.epsilon_end,
        "max_grad_norm": float("inf") if s.max_grad_norm is None else s.max_grad_norm,
        "policy_kwargs": {
            "net_arch": list(s.hidden_sizes),
            "optimizer_kwargs": {"eps": s.adam_epsilon},
        },
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }


# ---------------------------------------------------------------------- compute floor
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


def matmul_rate(m: int, k: int, n: int, seconds: float = 1.0, repeats: int = 5) -> float:
    """FLOP/s of a float32 numpy [m, k] x [k, n] matmul, best of ``repeats`` timed loops.

    Call it in a process started with OPENBLAS_NUM_THREADS=1 (as the worker is) for one thread.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    loops = 10
    while True:  # size the timed loop to about seconds / repeats
        t0 = time.perf_counter()
        for _ in range(loops):
            np.matmul(a, b, out=out)
        if time.perf_counter() - t0 > seconds / repeats / 4:
            break
        loops *= 4
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - t0) / loops)
    return 2 * m * k * n / best


# ---------------------------------------------------------------------- the step clock
class StepClock(gym.Wrapper):
    """Records ``time.perf_counter()`` after every ``step`` and every ``reset``.

    ``step_times[i]`` is the time at which env step i + 1 returned; ``resets`` holds
    (steps taken before this reset, its seed, the time it returned).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.step_times: list[float] = []
        self.resets: list[tuple[int, int | None, float]] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        out = self.env.reset(seed=seed, options=options)
        self.resets.append((len(self.step_times), seed, time.perf_counter()))
        return out

    def step(self, action):
        out = self.env.step(action)
        self.step_times.append(time.perf_counter())
        return out

    @property
    def start(self) -> float:
        """When training started: the return of the first reset."""
        return self.resets[0][2]

    def elapsed_at(self, steps: Sequence[int]) -> dict[int, float]:
        """Seconds from the first reset to the return of each env step in ``steps`` (1-based)."""
        return {s: self.step_times[s - 1] - self.start for s in steps}


def eval_windows(
    resets: Sequence[tuple[int, int | None, float]], step_times: Sequence[float], first_seed: int
) -> list[tuple[float, float]]:
    """(start, end) times of each evaluation on a separate evaluation env.

    An evaluation starts with the reset seeded ``first_seed`` (its episode 0) and ends with the
    last step before the next such reset (or the last step of all).
    """
    starts = [(n, t) for n, seed, t in resets if seed == first_seed]
    windows = []
    for i, (n_before, t_start) in enumerate(starts):
        n_end = starts[i + 1][0] if i + 1 < len(starts) else len(step_times)
        windows.append((t_start, step_times[n_end - 1] if n_end > n_before else t_start))
    return windows


def train_seconds_at(
    clock_start: float, step_time: float, windows: Sequence[tuple[float, float]]
) -> float:
    """Wall seconds from ``clock_start`` to ``step_time`` less the evaluation windows before it."""
    evaluating = sum(end - start for start, end in windows if end <= step_time)
    return step_time - clock_start - evaluating


def register_clocked_env(env_id: str, made: list[StepClock]) -> str:
    """Register an id whose ``gym.make`` is ``StepClock(gym.make(env_id))``; return the id.

    Every env made through it is appended to ``made``: this is how the clocks reach inside
    ``dqn.train``, which makes its own envs from ``config.env_id``.
    """
    spec = gym.spec(env_id)
    clocked_id = "dqn_bench/" + env_id.replace("/", "_")

    def make(**kwargs) -> StepClock:
        clock = StepClock(gym.make(env_id, **kwargs))
        made.append(clock)
        return clock

    # The inner env already has its time limit and checks; the outer id adds no wrapper.
    gym.register(
        clocked_id, entry_point=make, reward_threshold=spec.reward_threshold,
        order_enforce=False, disable_env_checker=True,
    )
    return clocked_id




# ---------------------------------------------------------------------- evaluation curves
def greedy_returns(env: gym.Env, act, episodes: int, first_seed: int) -> list[float]:
    """Returns of ``episodes`` episodes of ``act(obs) -> action``, episode i seeded first_seed+i."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=first_seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def first_solve(curve: Sequence[Sequence[float]], threshold: float) -> tuple[int, float] | None:
    """(env step, train seconds) of the first evaluation whose mean is >= threshold, else None.

    ``curve`` rows are (env_step, eval_mean, train_seconds_so_far).
    """
    for step, mean, seconds in curve:
        if mean >= threshold:
            return int(step), float(seconds)
    return None


# ---------------------------------------------------------------------- workers
# Each runs in its own process (see ``_worker_main``) and returns plain JSON-able values.
def _dqn_base_config(job: dict[str, Any]):
    from dqn.config import DQNConfig

    return DQNConfig.from_yaml(job["config"]) if job.get("config") else DQNConfig()


def _train_dqn(config, made: list[StepClock]):
    """``dqn.train`` in a scratch folder; returns (result, training clock, evaluation clock)."""
    import tempfile

    from dqn.loop import train

    made.clear()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            config.replace(output_dir=tmp), run_dir=Path(tmp) / "run", progress=False,
            log_tensorboard=False,
        )
    evals = [c for c in made if c.resets and c.resets[0][1] == config.eval_seed]
    trains = [c for c in made if c not in evals]
    return result, trains[0] if trains else None, evals[0] if evals else None


def _dqn_threads(config) -> str:
    threads = config.num_threads
    jit = " + XLA" if config.jit_compile else ""
    return (f"TF and BLAS {threads} thread{'s' if threads != 1 else ''} (config num_threads)"
            f"{jit}")


def _work_dqn_throughput(job: dict[str, Any]) -> dict[str, Any]:
    s = Settings.from_dict(job["settings"])
    made: list[StepClock] = []
    total = s.total_env_steps
    base = _dqn_base_config(job)
    config = base.replace(
        **{**dqn_overrides(s), "env_id": register_clocked_env(s.env_id, made)},
        num_envs=1,  # one env, as in SB3's runs (see _work_dqn_vector for more)
        **job.get("overrides", {}), seed=job["seed"],
        # No evaluation or checkpoint inside the timed steps (one of each follows the last).
        eval_every_env_steps=total, eval_episodes=1, checkpoint_every_env_steps=total + 1,
    )
    _, clock, _ = _train_dqn(config, made)
    elapsed = clock.elapsed_at(job["marks"])
    return {"elapsed": [elapsed[m] for m in job["marks"]], "threads": _dqn_threads(config)}


def _work_dqn_vector(job: dict[str, Any]) -> dict[str, Any]:
    """A whole run with ``num_envs`` > 1, timed by dqn's own training clock.

    A vector env steps all its copies in one call, so there is no per-env step to wrap with a
    StepClock: the time is ``TrainResult.train_seconds`` (from the first reset to the end of
    the loop, evaluation excluded; one evaluation follows the last step).
    """
    s = Settings.from_dict(job["settings"])
    total = s.total_env_steps
    config = _dqn_base_config(job).replace(
        **dqn_overrides(s), **job["overrides"], seed=job["seed"],
        eval_every_env_steps=total, eval_episodes=1, checkpoint_every_env_steps=total + 1,
    )
    result, _, _ = _train_dqn(config, [])
    return {
        "seconds": result.train_seconds, "env_steps": int(result.history[-1]["env_step"]),
        "threads": _dqn_threads(config),
    }


def _work_dqn_solve(job: dict[str, Any]) -> dict[str, Any]:
    base = _dqn_base_config(job)
    made: list[StepClock] = []
    overrides = {
        "env_id": register_clocked_env(base.env_id, made),
        "eval_every_env_steps": job["eval_every_env_steps"],
        "eval_episodes": job["eval_episodes"],
        "eval_seed": job["eval_seed"],
    }
    if job.get("total_env_steps"):
        overrides["total_env_steps"] = job["total_env_steps"]
    # SB3 writes no checkpoints; dqn's periodic ones are left out of the timed run too.
    total = overrides.get("total_env_steps", base.total_env_steps)
    overrides["checkpoint_every_env_steps"] = total + 1
    runs = []
    for seed in job["seeds"]:
        config = base.replace(**overrides, seed=seed)
        result, clock, eval_clock = _train_dqn(config, made)
        windows = eval_windows(eval_clock.resets, eval_clock.step_times, config.eval_seed)
        curve = [
            (int(row["env_step"]), float(row["eval_return_mean"]),
             train_seconds_at(clock.start, clock.step_times[int(row["env_step"]) - 1], windows))
            for row in result.history
        ]
        runs.append({
            "seed": seed, "curve": curve, "threshold": result.solve_return,
            "reported_train_seconds": result.train_seconds,
        })
    summary = (
        f"{'x'.join(map(str, config.hidden_sizes))} net, {config.total_env_steps} steps, "
        f"train every {config.train_every_env_steps} x {config.gradient_steps_per_train}, "
        f"{config.loss}, lr {config.learning_rate:g}"
    )
    lr_end = getattr(config, "learning_rate_end", None)
    summary += f" -> {lr_end:g}" if lr_end is not None else ""
    summary += f", grad norm <= {config.max_grad_norm:g}" if config.max_grad_norm else ""
    summary += ", double DQN" if config.double_dqn else ""
    return {"runs": runs, "threads": _dqn_threads(config), "config_summary": summary}


def _sb3_model(s: Settings, env: gym.Env, seed: int, threads: int):
    import torch
    from stable_baselines3 import DQN

    torch.set_num_threads(threads)
    return DQN("MlpPolicy", env, **sb3_kwargs(s, seed)), f"torch {torch.get_num_threads()} thread"


def _work_sb3_throughput(job: dict[str, Any]) -> dict[str, Any]:
    s = Settings.from_dict(job["settings"])
    clock = StepClock(gym.make(s.env_id))
    model, threads = _sb3_model(s, clock, job["seed"], job["torch_threads"])
    model.learn(total_timesteps=s.total_env_steps)
    elapsed = clock.elapsed_at(job["marks"])
    return {"elapsed": [elapsed[m] for m in job["marks"]], "threads": threads}


def _work_sb3_solve(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    s = Settings.from_dict(job["settings"])
    every, episodes, eval_seed = job["eval_every_env_steps"], job["eval_episodes"], job["eval_seed"]
    threshold = gym.spec(s.env_id).reward_threshold

    class GreedyEvaluation(BaseCallback):
        """Evaluates every ``every`` env steps; training time excludes evaluation time."""

        def __init__(self, model) -> None:
            super().__init__()
            self.eval_env = gym.make(s.env_id)
            self.q_net = model.policy.q_net
            self.curve: list[tuple[int, float, float]] = []
            self.eval_seconds = 0.0

        def _on_training_start(self) -> None:
            self.t_start = time.perf_counter()

        def act(self, obs) -> int:
            # argmax Q, as predict(deterministic=True), without predict's per-call overhead.
            with torch.no_grad():
                q_values = self.q_net(torch.as_tensor(obs, dtype=torch.float32)[None])
            return int(q_values.argmax())

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % every == 0 and step <= s.total_env_steps:
                t0 = time.perf_counter()
                mean = sum(greedy_returns(self.eval_env, self.act, episodes, eval_seed)) / episodes
                self.curve.append((step, mean, t0 - self.t_start - self.eval_seconds))
                self.eval_seconds += time.perf_counter() - t0
            return True

    runs = []
    for seed in job["seeds"]:
        model, threads = _sb3_model(s, gym.make(s.env_id), seed, job["torch_threads"])
        callback = GreedyEvaluation(model)
        model.learn(total_timesteps=s.total_env_steps, callback=callback)
        runs.append({"seed": seed, "curve": callback.curve, "threshold": threshold})
    return {"runs": runs, "threads": threads}


def _work_matmul(job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    m, k, n = job["shape"]
    rate = matmul_rate(m, k, n, seconds=job["seconds"])
    return {
        "flops_per_second": rate,
        "how": f"numpy {np.__version__} float32 [{m},{k}]x[{k},{n}] matmul, 1 thread",
    }


WORKERS = {
    "dqn_throughput": _work_dqn_throughput,
    "dqn_vector": _work_dqn_vector,
    "dqn_solve": _work_dqn_solve,
    "sb3_throughput": _work_sb3_throughput,
    "sb3_solve": _work_sb3_solve,
    "matmul": _work_matmul,
}


def _worker_main(argv: Sequence[str]) -> int:
    """``python -m dqn.bench JOB_JSON``: run one job, print its result as one prefixed JSON line."""
    job = json.loads(argv[0])
    result = WORKERS[job["worker"]](job)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
