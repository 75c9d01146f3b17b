"""Does this process round like another machine? ``python -m benchmarks.rounding``.

Prints a digest of the parameters each population learner (TensorFlow under XLA, numpy) reaches
after 16 gradient steps of 4 default [256, 256] networks on fixed random rows. On one machine
and one set of library versions the digests repeat exactly; a CPU whose kernels round
differently gives other digests. Run it under the settings of ``make test-other-cpu``
(``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2 OPENBLAS_CORETYPE=Sandybridge``) to see that they change
both learners' rounding on this machine, which is what makes that target a stand-in for another
CPU. (``OPENBLAS_CORETYPE=Haswell``, the target's setting before, changes nothing on an AVX2 CPU:
OpenBLAS runs its Haswell kernels there already.)
"""

from __future__ import annotations

import hashlib

from benchmarks.args import Parser

STEPS = 16


def digests() -> dict[str, str]:
    import numpy as np

    from benchmarks.population_scaling import random_population
    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    out = {}
    for learner in ("tensorflow", "numpy"):
        pop, rows, active = random_population(4, 256, learner)
        pop.burst(np.ascontiguousarray(rows[:, :STEPS]), active)
        out[learner] = hashlib.sha256(np.ascontiguousarray(pop.online).tobytes()).hexdigest()[:16]
    return out


def main(argv: list[str] | None = None) -> None:
    # No options: the parser gives --help and refuses stray arguments (exit 2).
    Parser(__file__, __doc__).parse_args(argv)
    for learner, digest in digests().items():
        print(f"{learner}: {digest}")


if __name__ == "__main__":
    main()
