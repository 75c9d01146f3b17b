"""The Stable-Baselines3 side of the benchmark: SB3's DQN with the same settings and clock.

Each ``work_*`` function is one worker job (see ``benchmarks.worker``), run in a process of its
own. torch and Stable-Baselines3 come from the optional "bench" extra and are imported inside
the jobs only, so the rest of the benchmark (and its tests) runs without them;
``missing_extra`` says how to install them.

Greedy evaluation goes through ``dqn.evaluation.evaluate``, the same episode loop that scores
dqn's runs, with ``GreedyQNet`` as the agent (that module imports no TensorFlow).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import gymnasium as gym

from benchmarks.clock import StepClock
from benchmarks.settings import Settings, sb3_kwargs

INSTALL_HINT = (
    'the benchmark needs the optional "bench" extra (Stable-Baselines3 and torch): '
    'run `pip install -c constraints.txt -e ".[bench]"` or `make bench`'
)
EXTRA_MODULES = ("torch", "stable_baselines3")


def missing_extra() -> str | None:
    """The install hint if torch or Stable-Baselines3 cannot be imported, else None."""
    if all(importlib.util.find_spec(name) is not None for name in EXTRA_MODULES):
        return None
    return INSTALL_HINT


class GreedyQNet:
    """An SB3 Q-network as ``dqn.evaluation.evaluate`` takes an agent: ``act(obs)`` is argmax Q.

    The same action as ``model.predict(obs, deterministic=True)``, without predict's per-call
    overhead.
    """

    def __init__(self, q_net) -> None:
        import torch

        self._torch = torch
        self.q_net = q_net

    def act(self, obs) -> int:
        torch = self._torch
        with torch.no_grad():
            q_values = self.q_net(torch.as_tensor(obs, dtype=torch.float32)[None])
        return int(q_values.argmax())


def _model(s: Settings, env: gym.Env, seed: int, threads: int):
    import torch
    from stable_baselines3 import DQN

    torch.set_num_threads(threads)
    return DQN("MlpPolicy", env, **sb3_kwargs(s, seed)), f"torch {torch.get_num_threads()} thread"


def work_throughput(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``sb3_throughput``: seconds from the first reset to each env step in ``marks``."""
    s = Settings.from_dict(job["settings"])
    clock = StepClock(gym.make(s.env_id))
    model, threads = _model(s, clock, job["seed"], job["torch_threads"])
    model.learn(total_timesteps=s.total_env_steps)
    elapsed = clock.elapsed_at(job["marks"])
    return {"elapsed": [elapsed[m] for m in job["marks"]], "threads": threads}


def work_solve(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``sb3_solve``: runs over ``seeds`` with an evaluation curve, as ``dqn_solve``."""
    from stable_baselines3.common.callbacks import BaseCallback

    from dqn.evaluation import evaluate

    s = Settings.from_dict(job["settings"])
    every, episodes, eval_seed = job["eval_every_env_steps"], job["eval_episodes"], job["eval_seed"]
    threshold = gym.spec(s.env_id).reward_threshold

    class GreedyEvaluation(BaseCallback):
        """Evaluates every ``every`` env steps; training time excludes evaluation time."""

        def __init__(self, model) -> None:
            super().__init__()
            self.eval_env = gym.make(s.env_id)
            self.greedy = GreedyQNet(model.policy.q_net)
            self.curve: list[tuple[int, float, float]] = []
            self.eval_seconds = 0.0

        def _on_training_start(self) -> None:
            self.t_start = time.perf_counter()

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % every == 0 and step <= s.total_env_steps:
                t0 = time.perf_counter()
                mean, _, _ = evaluate(self.greedy, self.eval_env, episodes, eval_seed)
                self.curve.append((step, mean, t0 - self.t_start - self.eval_seconds))
                self.eval_seconds += time.perf_counter() - t0
            return True

    runs = []
    for seed in job["seeds"]:
        model, threads = _model(s, gym.make(s.env_id), seed, job["torch_threads"])
        callback = GreedyEvaluation(model)
        model.learn(total_timesteps=s.total_env_steps, callback=callback)
        runs.append({"seed": seed, "curve": callback.curve, "threshold": threshold})
    return {"runs": runs, "threads": threads}
