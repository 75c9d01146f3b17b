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
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.args import Parser, positive_int


def base_config(steps: int, hidden: int):
    """configs/cartpole.yaml for ``steps`` env steps, with [hidden, hidden] networks."""
    from dqn.config import DQNConfig

    return DQNConfig.from_yaml("configs/cartpole.yaml").replace(
        total_env_steps=steps, hidden_sizes=(hidden, hidden)
    )


def one(members: int, steps: int, hidden: int) -> dict:
    """Train a population of ``members`` in this process; its peak RSS and the estimate."""
    import resource
    import tempfile

    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    from dqn.members import member_bytes, population_bytes
    from dqn.population import Member, train_population
    from dqn.replay import ring_bytes

    base = base_config(steps, hidden)
    with tempfile.TemporaryDirectory() as tmp:
        train_population(
            base,
            [Member({}, seed, "m") for seed in range(members)],
            out_dir=tmp,
            progress=False,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    untouched = members * ring_bytes(max(0, base.buffer_size - steps), 4)
    return {
        "members": members,
        "peak": peak,
        "untouched": untouched,
        "estimate": members * (ring_bytes(base.buffer_size, 4) + member_bytes(base, 4, 2)),
        "check": population_bytes([base] * members, 4, 2, runtime=True),
    }


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, nargs="+", default=[1, 25])
    p.add_argument("--steps", type=positive_int, default=3_000)
    p.add_argument(
        "--hidden", type=positive_int, default=256, help="hidden width H of 4 -> H -> H -> 2"
    )
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process's job
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.steps, args.hidden)))
        return 0
    from dqn.errors import ConfigError

    # Checked here, not by each child: its ConfigError came back as a CalledProcessError's
    # traceback that did not say what was wrong (--steps 600: learning would never start).
    try:
        base_config(args.steps, args.hidden)
    except ConfigError as exc:
        p.error(f"--steps {args.steps}, --hidden {args.hidden}: {exc}")
    rows = []
    for m in args.members:
        cmd = [sys.executable, "-m", "benchmarks.population_memory", "--one", str(m)]
        out = subprocess.run(
            [*cmd, "--steps", str(args.steps), "--hidden", str(args.hidden)],
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
    print(
        f"populations of configs/cartpole.yaml with [{h}, {h}] networks, {args.steps:,} env steps, "
        "one process each:"
    )
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
