"""train() in a loop over seeds in one process, as a notebook or a sweep script calls it, with the
compiled update shared by the agents and without: ``python -m benchmarks.train_loop [--runs 8]
[--steps 3000]``.

Agents of the default network and the same settings but their seeds share their learner's
compiled functions (``dqn.tf_learner.shared_key``). Without that, every agent traced and
XLA-compiled its update again, and XLA never frees a compiled program. The two ways alternate
run by run in one process (one thread; the unshared one clears the shared functions first),
each on its own seeds: the wall time of each call and the process's resident memory after it.
The first call of all pays TensorFlow's and XLA's own start for both, and is left out.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.args import Parser, positive_int


def rss_mb() -> float:
    """The process's resident memory (Linux's /proc), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


def measure(runs: int, steps: int) -> dict[str, list[tuple[float, float]]]:
    """(seconds, MB of memory added) of each call, by way, the ways alternating."""
    from dqn import DQNConfig, tf_learner, train
    from dqn.runtime import configure_tensorflow

    configure_tensorflow(1)
    config = DQNConfig(
        total_env_steps=steps,
        learning_starts_env_steps=steps // 6,
        eval_every_env_steps=steps // 3,
        eval_episodes=2,
        final_eval_episodes=3,
    )
    out: dict[str, list[tuple[float, float]]] = {"shared": [], "compiled per agent": []}
    with tempfile.TemporaryDirectory() as tmp:
        train(config, run_dir=Path(tmp) / "warm-up", progress=False)
        for seed in range(1, 2 * runs + 1):
            way = "shared" if seed % 2 else "compiled per agent"
            if way != "shared":
                tf_learner._SHARED.clear()
            before, t0 = rss_mb(), time.perf_counter()
            train(config.replace(seed=seed), run_dir=Path(tmp) / f"s{seed}", progress=False)
            out[way].append((time.perf_counter() - t0, rss_mb() - before))
    return out


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--runs", type=positive_int, default=8, help="calls of each way")
    p.add_argument("--steps", type=positive_int, default=3000, help="env steps of each run")
    args = p.parse_args(argv)
    if args.steps < 600:
        p.error("--steps must be at least 600 (learning starts at a sixth of them)")
    out = measure(args.runs, args.steps)
    print(f"train() x {args.runs} each way, {args.steps:,} env steps a run, ways alternating:")
    print("| way | median s a call | memory added, MB a call (median) |")
    print("|---|---|---|")
    for way, rows in out.items():
        seconds = statistics.median(s for s, _ in rows)
        added = statistics.median(m for _, m in rows)
        print(f"| {way} | {seconds:.2f} | {added:.1f} |")
    shared, alone = (statistics.median(s for s, _ in out[w]) for w in out)
    print(f"compiled per agent / shared: {alone / shared:.2f}x the time a call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
