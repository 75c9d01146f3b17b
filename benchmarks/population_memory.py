"""What a population process really holds: ``python -m benchmarks.population_memory``.

``dqn.members.population_bytes`` estimates a population's memory before anything is allocated,
to refuse one that would not fit; its constants for the process and the compiled program come
from this benchmark. This measures what a process holds: for each member count, a fresh process
trains a population of the default config (configs/cartpole.yaml) for ``--steps`` env steps (a
compilation, bursts, an evaluation and the final checkpoint) and reports its peak resident set.
A replay ring is allocated zeroed, and the kernel maps its pages only when rows are written, so
the rows not yet written are added back ("peak, rings full"): that is the figure the estimate
must cover. The slope between the smallest and the largest count is the cost of one more
member, the rest the process's own (Python, TensorFlow, the compiled program).

``--pad-obs D`` trains on CartPole with its observations padded with zeros to D dimensions,
[16] networks and no diagnostics probe: there a burst's sampled rows (gradient_steps_per_train
x batch_size rows of 2 D + 3 floats) outweigh the rest of a member, and the estimate's count of
their copies (``dqn.members.TF_ROWS_COPIES``) is what is measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np

from benchmarks.args import Parser, positive_int

PADDED = "PaddedCartPole-v0"


class _Padded(gym.ObservationWrapper):
    """CartPole with its 4 observations followed by zeros, ``dim`` in all."""

    def __init__(self, env: gym.Env, dim: int) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def observation(self, obs):
        out = np.zeros(self.observation_space.shape, np.float32)
        out[: len(obs)] = obs
        return out


def _make_padded(dim: int, **kwargs) -> gym.Env:
    return _Padded(gym.make("CartPole-v1", **kwargs), dim)


if PADDED not in gym.registry:  # the env id "benchmarks.population_memory:PaddedCartPole-v0"
    gym.register(PADDED, entry_point=_make_padded, max_episode_steps=500, reward_threshold=475)


def base_config(steps: int, hidden: int, pad_obs: int | None = None, learner: str | None = None):
    """configs/cartpole.yaml for ``steps`` env steps, with [hidden, hidden] networks; with
    ``pad_obs``, CartPole padded to that many observations, [16] networks, no probe."""
    from dqn.config import DQNConfig

    base = DQNConfig.from_yaml("configs/cartpole.yaml").replace(
        total_env_steps=steps, hidden_sizes=(hidden, hidden)
    )
    if learner is not None:
        base = base.replace(learner=learner)
    if pad_obs is None:
        return base
    return base.replace(
        env_id=f"benchmarks.population_memory:{PADDED}",
        env_kwargs={"dim": pad_obs},
        hidden_sizes=(16,),
        diagnostics=False,
        eval_every_env_steps=steps,
        eval_episodes=2,
        final_eval_episodes=2,
        checkpoint_every_env_steps=steps,
    )


def one(members: int, steps: int, hidden: int, pad_obs: int | None, learner: str | None) -> dict:
    """Train a population of ``members`` in this process; its peak RSS and the estimate."""
    import resource
    import tempfile

    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    from dqn.config import replay_capacity
    from dqn.members import member_bytes, population_bytes
    from dqn.population import Member, train_population
    from dqn.replay import ring_bytes

    base = base_config(steps, hidden, pad_obs, learner)
    obs_dim = pad_obs or 4
    with tempfile.TemporaryDirectory() as tmp:
        train_population(
            base,
            [Member({}, seed, "m") for seed in range(members)],
            out_dir=tmp,
            progress=False,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    untouched = members * ring_bytes(max(0, replay_capacity(base) - steps), obs_dim)
    return {
        "members": members,
        "peak": peak,
        "untouched": untouched,
        "estimate": members
        * (ring_bytes(replay_capacity(base), obs_dim) + member_bytes(base, obs_dim, 2)),
        "check": population_bytes([base] * members, obs_dim, 2, runtime=True),
    }


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, nargs="+", default=[1, 25])
    p.add_argument("--steps", type=positive_int, default=3_000)
    p.add_argument(
        "--hidden", type=positive_int, default=256, help="hidden width H of 4 -> H -> H -> 2"
    )
    p.add_argument("--pad-obs", type=positive_int, metavar="D", help="see above")
    p.add_argument("--learner", choices=("tensorflow", "numpy"), help="default: the config's")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process's job
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.steps, args.hidden, args.pad_obs, args.learner)))
        return 0
    from dqn.errors import ConfigError

    # Checked here, not by each child: its ConfigError came back as a CalledProcessError's
    # traceback that did not say what was wrong (--steps 600: learning would never start).
    try:
        base_config(args.steps, args.hidden, args.pad_obs, args.learner)
    except ConfigError as exc:
        p.error(f"--steps {args.steps}, --hidden {args.hidden}: {exc}")
    rows = []
    for m in args.members:
        cmd = [sys.executable, "-m", "benchmarks.population_memory", "--one", str(m)]
        options = ["--steps", str(args.steps), "--hidden", str(args.hidden)]
        options += ["--pad-obs", str(args.pad_obs)] if args.pad_obs else []
        options += ["--learner", args.learner] if args.learner else []
        out = subprocess.run(
            [*cmd, *options],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:  # what the child said last: its error, or its traceback's end
            said = next((x for x in reversed(out.stderr.splitlines()) if x.strip()), "no message")
            print(f"{p.prog}: the run of {m} members failed: {said}", file=sys.stderr)
            return out.returncode if out.returncode > 0 else 128 - out.returncode
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    mb = 1e6
    h = args.hidden
    what = f"configs/cartpole.yaml with [{h}, {h}] networks"
    if args.pad_obs:
        what = f"configs/cartpole.yaml on CartPole padded to {args.pad_obs}-D with [16] networks"
    learner = f", learner {args.learner}" if args.learner else ""
    print(f"populations of {what}{learner}, {args.steps:,} env steps, one process each:")
    for r in rows:
        full = r["peak"] + r["untouched"]
        print(
            f"  {r['members']:3d} members: peak RSS {r['peak'] / mb:,.0f} MB, rings full "
            f"{full / mb:,.0f} MB; the refusal's estimate (dqn.members.population_bytes, "
            f"new process) {r['check'] / mb:,.0f} MB, of which members {r['estimate'] / mb:,.0f}"
        )
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        full = [r["peak"] + r["untouched"] for r in (a, b)]
        slope = (full[1] - full[0]) / (b["members"] - a["members"])
        per = b["estimate"] / b["members"]
        print(
            f"  one more member: {slope / mb:.1f} MB (member_bytes and its ring: {per / mb:.1f} "
            f"MB); the process itself: {(full[0] - slope * a['members']) / mb:,.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
