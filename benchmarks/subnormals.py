"""One plain way the two learners round differently: subnormal floats. ``python -m
benchmarks.subnormals [--seed 0] [--steps 50000]``.

A parameter whose gradient is exactly zero step after step (a weight into or out of a ReLU
that never fires on the batches) keeps an Adam first moment that shrinks by beta1 = 0.9 a step,
and after some 700 steps it falls below float32's smallest normal number (1.18e-38). TensorFlow
runs its ops with subnormal numbers flushed to zero; numpy keeps them (gradual underflow), and
arithmetic on them can be slow. This trains the given config (the default one) once with each
learner, counts the zero and the subnormal entries of the final parameters and Adam moments,
and times the numpy learner's 128-step burst on its state as trained and with its subnormals
flushed to zero, alternating, on random rows.
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.args import Parser, positive_int
from benchmarks.population_scaling import random_rows

TINY = np.finfo(np.float32).tiny  # the smallest normal float32
FIELDS = ("online", "adam_m", "adam_v")
ROUNDS = 21  # alternating bursts of each state; the median of each is compared


def count(values: np.ndarray) -> tuple[int, int]:
    """(zero entries, subnormal entries) of a float32 array."""
    values = np.asarray(values, np.float32)
    zero = values == 0
    return int(zero.sum()), int((~zero & (np.abs(values) < TINY)).sum())


def flushed(values: np.ndarray) -> np.ndarray:
    """``values`` with every subnormal entry set to zero, as TensorFlow's ops would leave it."""
    return np.where(np.abs(values) < TINY, np.float32(0), values).astype(np.float32)


def last_dead_fractions(metrics_csv: Path) -> dict[str, float]:
    """The dead-unit fractions of each hidden layer in a run's last metrics row."""
    with open(metrics_csv, newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return {k.split("/")[1]: float(v) for k, v in last.items() if k.startswith("dead_fraction/")}


def initial_dead_fractions(config, states: int = 1024) -> dict[str, float]:
    """The dead-unit fractions of each hidden layer of the config's initial ReLU network, on
    ``states`` observations of a uniformly random policy (seeded by the config's seed)."""
    import gymnasium as gym

    from dqn.diagnostics import dead_unit_fraction
    from dqn.networks import build_mlp

    env, rng = gym.make(config.env_id), np.random.default_rng(config.seed)
    obs, _ = env.reset(seed=config.seed)
    seen = []
    while len(seen) < states:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        seen.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    model = build_mlp(obs_dim, n_actions, config.hidden_sizes, config.activation, config.seed)
    x, out = np.asarray(seen, np.float32), {}
    weights = model.get_weights()
    for i in range(len(config.hidden_sizes)):  # a ReLU chain: W0, b0, W1, b1, ...
        x = np.maximum(x @ weights[2 * i] + weights[2 * i + 1], 0)
        out[f"hidden_{i}"] = dead_unit_fraction(x)
    return out


def dead_line(who: str, when: str, fractions: dict[str, float]) -> str:
    layers = ", ".join(f"{name} {value:.3f}" for name, value in fractions.items())
    return f"{who}: dead ReLU fraction {when}: {layers}"


def burst_seconds(agent, state, rows: np.ndarray) -> float:
    agent.state = state
    t0 = time.perf_counter()
    agent.update_rows(rows)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--config", default="configs/cartpole.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=positive_int, help="env steps (default: the config's)")
    args = p.parse_args(argv)

    from dqn.config import DQNConfig
    from dqn.errors import DQNError

    # Checked before TensorFlow's import, whose start-up lines would come before the one line.
    try:
        base = DQNConfig.from_yaml(args.config).replace(seed=args.seed)
        if args.steps:
            base = base.replace(total_env_steps=args.steps)
    except DQNError as exc:
        p.error(str(exc))
    from dqn import DQNAgent, train
    from dqn.runtime import configure_blas

    agents, dead = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for learner in ("tensorflow", "numpy"):
            config = base.replace(learner=learner)
            result = train(config, run_dir=Path(tmp, learner), progress=False)
            agents[learner] = DQNAgent.load(result.run_dir)
            dead[learner] = last_dead_fractions(result.run_dir / "metrics.csv")
    size = agents["numpy"].state.online.size
    print(f"{base.env_id}, seed {args.seed}, {base.total_env_steps} env steps; {size} parameters")
    print("| learner | state | zero | subnormal |")
    print("|---|---|---:|---:|")
    for learner, agent in agents.items():
        for field in FIELDS:
            zero, sub = count(getattr(agent.state, field))
            print(f"| {learner} | {field} | {zero} | {sub} |")
    if base.activation == "relu":
        print(
            dead_line(
                "initial network", "on a random policy's states", initial_dead_fractions(base)
            )
        )
        for learner, fractions in dead.items():
            print(dead_line(learner, "at the last evaluation (its probe batch)", fractions))

    configure_blas(1)
    agent = agents["numpy"]
    as_trained = agent.state
    clean = as_trained._replace(**{f: flushed(getattr(as_trained, f)) for f in FIELDS})
    k, batch = base.gradient_steps_per_train, base.batch_size
    rng = np.random.default_rng(0)
    rows = random_rows(rng, (k, batch), agent.obs_dim, agent.n_actions)
    burst_seconds(agent, as_trained, rows)  # the first call allocates
    kept, gone = [], []
    for _ in range(ROUNDS):
        kept.append(burst_seconds(agent, as_trained, rows))
        gone.append(burst_seconds(agent, clean, rows))
    a, b = statistics.median(kept), statistics.median(gone)
    print(
        f"numpy learner, a burst of {k} steps (median of {ROUNDS}, alternating): "
        f"{a * 1e3:.1f} ms with its subnormals, {b * 1e3:.1f} ms with them flushed: {a / b:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
