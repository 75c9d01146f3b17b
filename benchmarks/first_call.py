"""A population learner's first call, with and without a third run of its burst: ``python -m
benchmarks.first_call [--members 25] [--hidden 256] [--pairs 2]``.

On a new shape, ``dqn.fastcall.call_compiled`` traces and compiles the burst, then checks the
fast call against TensorFlow's public one by running both on the call's own arguments. It
returns the public call's outputs from that check; before, it ran the burst a third time.
Alternating in one process (one thread), each on a new learner, the first of each pair
alternating too: the first call's wall time both ways, and the next call's (one burst) for
scale.
"""

from __future__ import annotations

import time

from benchmarks.args import Parser, positive_int


def third_run_call(cache: dict, function, args, key):
    """``call_compiled`` as it was: the check's outputs dropped, the function run again."""
    from dqn.fastcall import flat_caller

    fn = cache.get(key)
    if fn is None:
        concrete = function.get_concrete_function(*args)
        fn = cache[key] = flat_caller(concrete, probe_args=args)
    return fn(*args)


def measure(members: int, hidden: int, pairs: int) -> list[tuple[str, float, float]]:
    from benchmarks.population_scaling import random_population
    from dqn import fastcall, tf_population
    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    out = []
    try:
        ways = [("third run", third_run_call), ("check's outputs", None)]
        for pair in range(pairs):
            # The process's first learner also pays TensorFlow's own first-use costs: which way
            # goes first alternates from pair to pair.
            for label, call in ways[:: 1 if pair % 2 == 0 else -1]:
                tf_population.call_compiled = call or fastcall.call_compiled
                pop, rows, active = random_population(members, hidden)  # a new learner
                t0 = time.perf_counter()
                pop.burst(rows, active)
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                pop.burst(rows, active)
                out.append((label, first, time.perf_counter() - t0))
    finally:
        tf_population.call_compiled = fastcall.call_compiled
    return out


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, default=25)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--pairs", type=positive_int, default=2)
    args = p.parse_args(argv)
    shape = f"{args.members} members of [{args.hidden}, {args.hidden}]"
    print(f"| {shape} | first call (s) | next call (s) |")
    print("|---|---:|---:|")
    for label, first, second in measure(args.members, args.hidden, args.pairs):
        print(f"| {label} | {first:.2f} | {second:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
