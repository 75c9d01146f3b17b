"""A trained run's greedy evaluation, one episode at a time or side by side:
``python -m benchmarks.run_eval RUN_DIR [--episodes 10 100]``.

RUN_DIR is a run folder (``make train`` writes one under runs/). Its agent plays E episodes,
episode i reset with eval_seed + i: once with ``dqn.evaluation.evaluate`` (one episode after
another, a forward pass of one observation a step: how a training run evaluated before), once
with ``dqn.evaluation.evaluate_side_by_side`` (the E episodes at once, up to 100, one forward
pass a step for all: how a run, and dqn-evaluate, evaluate now). Both in this one process,
alternating; the script checks that the returns agree and prints the ratio. An agent that
balances the pole plays 500 steps an episode, so a trained run is what to time.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.args import Parser, positive_int
from dqn.agent_files import read_agent_config, read_newest
from dqn.envs import config_env
from dqn.errors import DQNError, first_line
from dqn.evaluation import evaluate, evaluate_side_by_side, side_by_side_envs


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("run_dir", help="a trained run's folder")
    p.add_argument("--episodes", type=positive_int, nargs="+", default=[10, 100])
    args = p.parse_args(argv)
    # No agent there (a file, a typo) is one line, as dqn-evaluate's: checked before
    # TensorFlow's import, whose start-up lines would come before it.
    try:
        read_newest(Path(args.run_dir), read_agent_config)
        from dqn.agent import DQNAgent

        agent = DQNAgent.load(args.run_dir)
    except DQNError as exc:
        p.error(first_line(exc))
    config = agent.config
    print(f"{args.run_dir}: {config.env_id}, {list(config.hidden_sizes)} network")
    for episodes in args.episodes:
        envs = side_by_side_envs(config_env(config), [], episodes, lambda: config_env(config))
        t0 = time.perf_counter()
        one = evaluate(agent, envs[0], episodes, config.eval_seed)
        t1 = time.perf_counter()
        side = evaluate_side_by_side(agent, envs, episodes, config.eval_seed)
        t2 = time.perf_counter()
        assert one == side, (one[:2], side[:2])  # mean, std and every return
        print(
            f"  {episodes:3d} episodes (mean return {one[0]:.1f}): one at a time "
            f"{t1 - t0:6.2f} s, side by side {t2 - t1:6.2f} s, {(t1 - t0) / (t2 - t1):.1f}x"
        )
        for env in envs:
            env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
