"""train() in a loop over seeds in one process, as a notebook or a sweep script calls it, with the
compiled update shared by the agents and without: ``python -m benchmarks.train_loop [--runs 8]
[--steps 3000] [--members 0] [--resume]``; with ``--members M``, each call is
``train_population`` of M members (seeds) instead; with ``--resume``, each call is
``dqn.loop.resume`` of a run that ``on_eval`` stopped at its first evaluation (only the resume is
timed), whose agent is loaded from its checkpoint: a loaded agent of the default network shares
the compiled functions as a fresh one does.

Agents of the default network and the same settings but their seeds share their learner's
compiled functions (``dqn.tf_learner.shared_key``), populations their burst
(``dqn.tf_population.population_key``). Without that, every call traced and XLA-compiled its
update again, and XLA never frees a compiled program. Each way runs in a fresh process of its
own (one thread; the unshared one clears the shared functions before each call), the two one
after the other in this run: the median wall time of a call, and the process's resident memory
growth over its calls divided by their number (memory is the process's, so the ways cannot
share one; a single call's change is noise of the allocator, either sign). A first call in each
process, not counted, pays TensorFlow's and XLA's own start.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.args import Parser, positive_int

WAYS = ("shared", "compiled per call")


def measure(way: str, runs: int, steps: int, members: int = 0, resumes: int = 0) -> dict:
    """In this process: each call's seconds, and resident MB after the warm-up and at the end."""
    from benchmarks.learner_process_cost import resident_mb
    from dqn import DQNConfig, tf_learner, tf_population, train, train_population
    from dqn.loop import resume
    from dqn.runtime import configure_tensorflow

    configure_tensorflow(1)
    config = DQNConfig(
        total_env_steps=steps,
        learning_starts_env_steps=steps // 6,
        eval_every_env_steps=steps // 3,
        eval_episodes=2,
        final_eval_episodes=3,
    )
    seconds = []

    def call(seed: int, run_dir: Path) -> None:
        if members:  # call k trains seeds k * M to k * M + M - 1
            pairs = [({}, seed * members + i) for i in range(members)]
            train_population(config, pairs, out_dir=run_dir, progress=False)
        elif resumes:
            resume(run_dir, progress=False)
        else:
            train(config.replace(seed=seed), run_dir=run_dir, progress=False)

    def stopped(seed: int, run_dir: Path) -> None:  # the run a timed resume continues
        if resumes:
            stop = lambda row, agent: False  # noqa: E731 - on_eval: stop at the first evaluation
            train(config.replace(seed=seed), run_dir=run_dir, progress=False, on_eval=stop)

    with tempfile.TemporaryDirectory() as tmp:
        stopped(0, Path(tmp) / "warm-up")
        call(0, Path(tmp) / "warm-up")
        start = resident_mb(os.getpid())
        for seed in range(1, runs + 1):
            stopped(seed, Path(tmp) / f"s{seed}")
            if way != "shared":
                tf_learner._SHARED.clear()
                tf_population._SHARED.clear()
            t0 = time.perf_counter()
            call(seed, Path(tmp) / f"s{seed}")
            seconds.append(time.perf_counter() - t0)
        end = resident_mb(os.getpid())
    return {"seconds": seconds, "mb_start": start, "mb_end": end}


def in_a_process(way: str, runs: int, steps: int, members: int, resumes: int = 0) -> dict:
    code = "import json, sys; from benchmarks.train_loop import measure; "
    code += "print(json.dumps(measure(sys.argv[1], *map(int, sys.argv[2:]))))"
    proc = subprocess.run(
        [sys.executable, "-c", code, way, str(runs), str(steps), str(members), str(resumes)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--runs", type=positive_int, default=8, help="calls of each way")
    p.add_argument("--steps", type=positive_int, default=3000, help="env steps of each run")
    p.add_argument(
        "--members", type=int, default=0, help="0: train(); M: train_population of M members"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="time dqn.loop.resume of a run stopped at its first evaluation",
    )
    args = p.parse_args(argv)
    if args.steps < 600:
        p.error("--steps must be at least 600 (learning starts at a sixth of them)")
    if args.members < 0:
        p.error("--members must be 0 (train) or a number of members")
    if args.members and args.resume:
        p.error("--resume times dqn.loop.resume of single runs: give no --members")
    resumes = int(args.resume)
    out = {way: in_a_process(way, args.runs, args.steps, args.members, resumes) for way in WAYS}
    what = f"train_population of {args.members} members" if args.members else "train()"
    what = "dqn.loop.resume() of a run stopped at its first evaluation" if args.resume else what
    print(f"{what} x {args.runs} each way, {args.steps:,} env steps a run, a process each way:")
    print("| way | median s a call | resident MB: after the warm-up -> after the calls (a call) |")
    print("|---|---|---|")
    for way, got in out.items():
        grown = (got["mb_end"] - got["mb_start"]) / args.runs
        print(
            f"| {way} | {statistics.median(got['seconds']):.2f} | "
            f"{got['mb_start']:.0f} -> {got['mb_end']:.0f} ({grown:+.1f}) |"
        )
    shared, alone = (statistics.median(out[w]["seconds"]) for w in WAYS)
    print(f"compiled per call / shared: {alone / shared:.2f}x the time a call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
