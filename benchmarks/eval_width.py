"""A population's evaluation, episodes one after another or side by side:
``python -m benchmarks.eval_width [--members 25] [--hidden 256]``.

M members evaluate E CartPole episodes each, as ``dqn.population_loop`` does (E = 10 for the
periodic evaluation, 100 for the final one). Each step is one stacked forward pass of the M
members' [hidden, hidden] networks over their [M, W, 4] observations; W = 1 plays the episodes
one after another (as before side-by-side evaluation), W = E all at once. So that episodes last
as long as a trained agent's, actions come from a fixed balancing rule added to the network's
output times zero (the network's arithmetic is still done). Both ways run in this one process,
alternating; the ratio is printed.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from benchmarks.args import Parser, positive_int
from dqn.evaluation import evaluate_members
from dqn.runtime import configure_blas

BALANCE = (0.1, 0.5, 4.0, 1.0)  # Q(right) - Q(left) = obs . BALANCE pushes the pole upright


def balance_q(obs: np.ndarray) -> np.ndarray:
    """[..., 4] -> [..., 2], elementwise only: a row's actions never depend on how many rows
    share the call (a matrix product could round a row differently at another width)."""
    right = sum(obs[..., d].astype(np.float64) * w for d, w in enumerate(BALANCE))
    return np.stack([np.zeros_like(right), right], axis=-1)


def stacked_q(members: int, hidden: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = [4, hidden, hidden, 2]
    layers = [
        (
            rng.normal(0, 1 / np.sqrt(a), (members, a, b)).astype(np.float32),
            np.zeros((members, 1, b), np.float32),
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]

    def q_values(obs: np.ndarray) -> np.ndarray:  # [M, W, 4] -> [M, W, 2]
        x = obs
        for k, (w, b) in enumerate(layers):
            x = np.matmul(x, w) + b
            if k < len(layers) - 1:
                x = np.maximum(x, 0.0)
        return 0.0 * x + balance_q(obs)

    return q_values


def timed(q_values, members: int, episodes: int, width: int) -> tuple[float, float]:
    envs = [[gym.make("CartPole-v1") for _ in range(width)] for _ in range(members)]
    t0 = time.perf_counter()
    results = evaluate_members(q_values, envs, episodes, seed=10_000)
    return time.perf_counter() - t0, float(np.mean([m for m, _ in results]))


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, default=25)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--episodes", type=positive_int, nargs="+", default=[10, 100])
    args = p.parse_args(argv)
    configure_blas(1)
    q_values = stacked_q(args.members, args.hidden)
    print(f"{args.members} members, [{args.hidden}, {args.hidden}] networks, 1 BLAS thread:")
    for episodes in args.episodes:
        one, mean_one = timed(q_values, args.members, episodes, 1)
        side, mean_side = timed(q_values, args.members, episodes, episodes)
        assert mean_one == mean_side, (mean_one, mean_side)  # the same episodes both ways
        print(
            f"  {episodes:3d} episodes (mean return {mean_one:.1f}): one after another "
            f"{one:6.2f} s, side by side {side:6.2f} s, {one / side:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
