"""Where a population step's time goes, op by op: ``python -m benchmarks.step_profile
[--members 25] [--hidden 256] [--burst 128]``.

``benchmarks.learner_anatomy`` times the step's hidden-layer products alone and Adam's share by
swapping it out. This looks inside the one compiled program instead: XLA's CPU runtime records
every op it runs when ``--xla_cpu_enable_xprof_traceme`` is on, TensorFlow's profiler collects
those records, and XLA's dump of the optimized program gives each op's opcode and output shape.
One burst of the learner (K steps of all members, one thread) is profiled (with ``--burst k``,
K / k calls of k steps each, as a population that trains every env step makes them with k = 1),
and its ops' time is added up in four kinds:

- the step's hidden-layer products: dots with an [H, H] matrix among their operands or as their
  output (H the hidden width): the four products per member and step whose FLOPs the floor
  counts (forward of the online and of the target net, dx, dW);
- the other products: the first layer's and the Q-head's;
- passes over parameter-sized arrays: every other op whose output is [g, H, H] or [g, P] (g
  members of a group, P a member's parameters): Adam's moments and update, the gradient's
  squares for its norm, its concatenation, the target sync, the slices of the flat parameter
  rows into matrices, copies;
- the rest: activations, the loss, the metrics, the sort of the TD errors, control.

Recording an op costs time too: the printout gives the untraced burst's time next to the traced
one and to the ops' sum, so the share of small ops (the rest) reads as an upper bound.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from benchmarks.args import Parser, positive_int
from benchmarks.population_scaling import BATCH, K

KINDS = (
    "hidden-layer products",
    "other products",
    "passes over parameter-sized arrays",
    "the rest",
)
# An instruction of XLA's optimized HLO text: "%name = f32[4,64,256]{2,1,0} opcode(...".
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = \w+\[([\d,]*)\]\S* ([\w\-]+)\(([^)]*)\)")
_OP_TYPE = re.compile(r'op_type="(\w+)"')
TOP = 12  # the printout's list of the costliest ops
# Ops that only hold other ops (their own records span their children's).
_CONTAINERS = {"while", "call", "conditional"}


class Op(NamedTuple):
    opcode: str
    shape: tuple[int, ...]  # of its output
    source: str  # the TensorFlow op type it came from ("" when XLA made it)
    operands: tuple[str, ...]  # instruction names


def hlo_ops(text: str) -> dict[str, Op]:
    """{instruction name: Op} of an optimized HLO module's text; tuple-shaped instructions are
    left out."""
    ops = {}
    for line in text.splitlines():
        match = _INSTRUCTION.match(line)
        if match:
            name, dims, opcode, args = match.groups()
            source = _OP_TYPE.search(line)
            shape = tuple(int(d) for d in dims.split(",") if d)
            operands = tuple(re.findall(r"%([\w.\-]+)", args))
            ops[name] = Op(opcode, shape, source.group(1) if source else "", operands)
    return ops


def family(name: str) -> str:
    """An op's name without XLA's numbering: the same op in every group's copy of the step."""
    return re.sub(r"\.\d+$", "", name)


def kind_of(op: Op, ops: dict[str, Op], hidden: int) -> str:
    """Which of ``KINDS`` ``op`` is (see the module doc); ``ops`` gives its operands' shapes. A
    group of one member has no member axis: XLA drops it."""
    square = (hidden, hidden)
    if op.opcode == "dot":
        shapes = [op.shape, *(ops[n].shape for n in op.operands if n in ops)]
        return KINDS[0] if any(s[-2:] == square for s in shapes) else KINDS[1]
    if op.shape[-2:] == square or (op.shape and op.shape[-1] >= hidden * hidden):
        return KINDS[2]
    return KINDS[3]


def op_seconds(xspace_bytes: bytes, names: set[str]) -> dict[str, tuple[float, int]]:
    """(seconds, runs) recorded per op of ``names`` in a profiler trace (an XSpace protobuf)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(xspace_bytes)
    seconds: dict[str, float] = collections.defaultdict(float)
    runs: dict[str, int] = collections.defaultdict(int)
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name in names:
                    seconds[name] += event.duration_ps * 1e-12
                    runs[name] += 1
    return {name: (seconds[name], runs[name]) for name in seconds}


def measure(members: int, hidden: int, folder: Path, burst: int | None = None) -> dict:
    """Profile one burst of ``members``, or K / ``burst`` calls of ``burst`` steps (the XLA flags
    were set before TensorFlow started)."""
    import tensorflow as tf

    from benchmarks.population_scaling import REPEATS, default_shapes, random_population
    from dqn.runtime import configure_blas, configure_tensorflow
    from dqn.tf_population import group_size

    configure_tensorflow(1)
    configure_blas(1)
    learner, rows, active = random_population(members, hidden)
    burst = K if burst is None else burst
    calls, rows = K // burst, rows[:, :burst].copy()

    def timed_calls() -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            learner.burst(rows, active)
        return time.perf_counter() - t0

    learner.burst(rows, active)  # compiles (and dumps the optimized program)
    untraced = min(timed_calls() for _ in range(REPEATS))
    tf.profiler.experimental.start(str(folder / "trace"))
    traced = timed_calls()
    tf.profiler.experimental.stop()

    dumps = sorted((folder / "hlo").glob("*burst*cpu_after_optimizations.txt"))
    ops = hlo_ops(max(dumps, key=lambda p: p.stat().st_size).read_text())
    leaves = {n for n, op in ops.items() if op.opcode not in _CONTAINERS}
    traces = list((folder / "trace").rglob("*.xplane.pb"))
    seconds = op_seconds(traces[0].read_bytes(), leaves)
    by_kind, counts = dict.fromkeys(KINDS, 0.0), dict.fromkeys(KINDS, 0)
    families: dict[str, list] = {}
    for name, (s, n) in seconds.items():
        op = ops[name]
        kind = kind_of(op, ops, hidden)
        by_kind[kind] += s
        counts[kind] += n
        # A family's row shows one group's op (the groups differ only in size).
        key = (family(name), kind)
        row = families.setdefault(key, [family(name), op.source, kind, list(op.shape), 0])
        row[4] += s
    top = sorted(families.values(), key=lambda row: row[4], reverse=True)[:TOP]

    groups = math.ceil(members / group_size(default_shapes(hidden)))
    return {
        "untraced": untraced,
        "traced": traced,
        "kinds": by_kind,
        "counts": counts,
        "steps": calls * burst,
        "calls": calls,
        "repeats": REPEATS,
        "groups": groups,
        "top": top,
    }


def calls_text(r: dict) -> str:
    """'The burst', or 'The 128 calls of 1 step' for a profile of one-step calls."""
    calls = r.get("calls", 1)
    if calls == 1:
        return "The burst"
    per = r["steps"] // calls
    return f"The {calls} calls of {per} step{'s' * (per > 1)}"


def report(r: dict, members: int, hidden: int) -> str:
    """The printout of ``measure``'s result."""
    total = sum(r["kinds"].values())
    what = "one burst" if r.get("calls", 1) == 1 else calls_text(r)[len("The ") :]
    per_step = 1e6 / (r["steps"] * members)  # seconds of a burst -> us per member-step
    lines = [
        f"| {what}, {members} members of [{hidden}, {hidden}], one thread | us per "
        "member-step | share of the ops' sum |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {kind} | {s * per_step:.1f} | {s / total:.0%} |" for kind, s in r["kinds"].items()
    ]
    lines.append(f"| all ops, added up | {total * per_step:.1f} | 100% |")
    lines += [
        "",
        "| costliest ops (XLA's names, all groups) | from TF op | output (one group) | kind | us "
        "per member-step |",
        "|---|---|---|---|---:|",
    ]
    lines += [
        f"| {name} | {source or '-'} | {shape} | {kind} | {s * per_step:.1f} |"
        for name, source, kind, shape, s in r["top"]
    ]
    expected, groups = 4 * r["steps"] * r["groups"], r["groups"]
    lines.append(
        f"\nHidden-layer products recorded: {r['counts'][KINDS[0]]:,} (4 a step in each of "
        f"{groups} group{'s' * (groups != 1)} of members over {r['steps']} steps: {expected:,})."
    )
    lines.append(
        f"\n{calls_text(r)} took {r['traced'] * per_step:.1f} us per member-step while "
        "recorded and "
        f"{r['untraced'] * per_step:.1f} untraced (best of {r['repeats']}): recording added "
        f"{r['traced'] / r['untraced'] - 1:.0%}. Every recorded op pays for its record, so the "
        "many small ops' share (the rest) is an upper bound."
    )
    if hidden == BATCH:
        lines.append(
            f"\nThe batch and the hidden width are both {BATCH}: a dot's shapes cannot tell the "
            "hidden-layer products from the others (a [B, H] activation is [H, H] too), so the "
            "kinds above count every product touching one; read the op rows."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, default=25)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument(
        "--burst",
        type=positive_int,
        default=K,
        help=f"steps per call, a divisor of {K} (default {K}: one burst; 1: a call per env step)",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)  # the child's job: its scratch folder
    args = p.parse_args(argv)
    if K % args.burst:
        p.error(f"--burst {args.burst}: give a divisor of {K} (1, 2, 4, ..., {K})")
    if args.one:
        print(json.dumps(measure(args.members, args.hidden, Path(args.one), args.burst)))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        # The flags must be set before TensorFlow starts: hence a child process.
        flags = f"--xla_cpu_enable_xprof_traceme=true --xla_dump_to={scratch}/hlo"
        flags += " --xla_dump_hlo_as_text"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
        cmd = [sys.executable, "-m", "benchmarks.step_profile", "--one", scratch]
        cmd += ["--members", str(args.members), "--hidden", str(args.hidden)]
        cmd += ["--burst", str(args.burst)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    print(report(json.loads(out.stdout.strip().splitlines()[-1]), args.members, args.hidden))
    return 0


if __name__ == "__main__":
    sys.exit(main())
