"""The population regimes of ``python -m benchmarks.bench`` (p1, p2, p3), with their rows.

- (p1) regimes (b) and (c) with 32 members: aggregate env steps/s of a population against
  Stable-Baselines3's single run in the same benchmark run. Both layouts that use the two
  cores are measured: one process with two threads on the batched work, and two processes of
  16 members each (started together; their rates add up). The two-process layouts, the ones
  held to the target, run in ``P1_ROUNDS`` rounds, each with its own SB3 run just before them:
  the rate of a 5,000-step window on a 2-core machine shared with other tenants moves from one
  minute to the next, SB3's and dqn's alike, so a ratio is taken within a round and the table
  gives the rounds' median and each round's ratio.
- (p2) the default loss study, 5 variants x 10 seeds of configs/cartpole.yaml, as
  ``dqn-compare`` runs it: wall time with populations and with one process per run, and the
  study's compute floor (the matmul FLOPs of every gradient step the runs took, at the
  one-thread matmul rate of as many processes as the study has workers, measured all at once
  and added up: what the machine's cores do together, SMT siblings, shared caches and a
  container's CPU quota included).
- (p3) the 30-seed check of the default config: wall time with populations.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.population_scaling import BATCH
from benchmarks.settings import EVERY_4_STEPS, EVERY_STEP
from benchmarks.worker import run_worker, timed
from dqn.config import DQNConfig
from dqn.runtime import usable_cores

MEMBERS = 32
# Rounds of (p1)'s two-process layouts, each against an SB3 run of its own (module docstring).
P1_ROUNDS = 3
STUDY_VARIANTS = (
    "l2",
    "clipped_delta",
    "huber",
    "clipped_grad",
    "l2+gradclip:loss=l2,max_grad_norm=10",
)
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TWO_THREADS = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
LEARNERS = {"tensorflow": {}, "numpy": {"learner": "numpy"}}


def _together(label: str, jobs: list[dict], env: dict) -> list[dict | None]:
    """Run worker jobs at the same time, one process each."""
    print(f"  {label} ...", end="", file=sys.stderr, flush=True)

    def one(job):
        try:
            return run_worker(job, env)
        except RuntimeError as exc:
            print(f" FAILED\n{exc}", file=sys.stderr)
            return None

    with ThreadPoolExecutor(len(jobs)) as pool:
        out = list(pool.map(one, jobs))
    print(" done", file=sys.stderr)
    return out


def regime_p1(quick: bool, config: Path) -> dict:
    """(p1): for (b) and (c), SB3's single run and 32-member populations, each learner, in one
    process of 1 or 2 threads, or two processes of 16; the two-process layouts and SB3 in
    ``P1_ROUNDS`` rounds (``rounds``; ``runs`` is the first)."""
    warmup, measured = (250, 1_000) if quick else (1_000, 5_000)  # marks: multiples of 250
    members = 4 if quick else MEMBERS
    out = {}
    for key, s in (("b", EVERY_STEP), ("c", EVERY_4_STEPS)):
        if quick:
            s = s.replace(learning_starts_env_steps=500)
        first = s.learning_starts_env_steps + warmup
        s = s.replace(total_env_steps=first + measured)
        marks = [first, first + measured]
        job = {"settings": s.to_dict(), "marks": marks, "seed": 0}
        rounds = []
        for n in range(1 if quick else P1_ROUNDS):
            tag = f"({key}) round {n + 1}"
            sb3_job = {**job, "worker": "sb3_throughput", "torch_threads": 1}
            runs = {"sb3": timed(f"{tag}: SB3", sb3_job)}
            for learner, overrides in LEARNERS.items():
                pop = {**job, "worker": "dqn_population", "config": str(config), "first_seed": 0}
                one = {**pop, "members": members, "overrides": {**overrides, "num_threads": 1}}
                two = {**one, "overrides": {**overrides, "num_threads": 2}}
                half = members // 2
                if n == 0:  # the one-process layouts: once, for the comparison of layouts
                    runs[f"{learner}/1 process, 1 thread"] = timed(
                        f"{tag}: {learner}, {members} members, 1 thread", one, ONE_THREAD
                    )
                    runs[f"{learner}/1 process, 2 threads"] = timed(
                        f"{tag}: {learner}, {members} members, 2 threads", two, TWO_THREADS
                    )
                pair = [{**one, "members": half}, {**one, "members": half, "first_seed": half}]
                runs[f"{learner}/2 processes"] = _together(
                    f"{tag}: {learner}, 2 processes of {half}", pair, ONE_THREAD
                )
            rounds.append(runs)
        out[key] = {
            "settings": s,
            "measured": measured,
            "members": members,
            "runs": rounds[0],
            "rounds": rounds,
        }
    return out


def round_ratios(r: dict, layout: str) -> list[float] | None:
    """(p1): ``layout``'s aggregate rate over its round's SB3 rate, for each round of ``r``
    (a regime's result); None if a run of any round failed."""
    ratios = []
    for runs in r.get("rounds", [r["runs"]]):
        d, b = aggregate_rate(runs.get(layout), r["measured"]), sb3_rate(runs, r["measured"])
        if d is None or b is None:
            return None
        ratios.append(d / b)
    return ratios


def sb3_rate(runs: dict, measured: int) -> float | None:
    sb3 = runs.get("sb3")
    return None if sb3 is None else measured / (sb3["elapsed"][1] - sb3["elapsed"][0])


def aggregate_rate(run, measured: int) -> float | None:
    """Env steps/s summed over members (and over processes, for a pair run together)."""
    if run is None:
        return None
    if isinstance(run, list):
        rates = [aggregate_rate(r, measured) for r in run]
        return None if None in rates else sum(rates)
    return run["members"] * measured / (run["elapsed"][1] - run["elapsed"][0])


def floor_shape(c: DQNConfig) -> tuple[int, int, int]:
    """(batch, in, out) of the matmul whose one-thread rate prices (p2)'s floor: the config's
    batch through its largest hidden-to-hidden layer (a single hidden layer: [width, width]),
    the product that dominates a gradient step's arithmetic."""
    sizes = c.hidden_sizes
    pairs = list(zip(sizes[:-1], sizes[1:])) or [(sizes[0], sizes[0])]
    fan_in, fan_out = max(pairs, key=lambda pair: pair[0] * pair[1])
    return c.batch_size, fan_in, fan_out


def anatomy_hidden(c: DQNConfig) -> int | None:
    """The hidden width H for ``benchmarks.learner_anatomy``, which times CartPole's
    4 -> H -> H -> 2 network at batch 64; None for a config of another shape (no anatomy)."""
    sizes = c.hidden_sizes
    shaped = c.env_id.startswith("CartPole") and len(sizes) == 2 and sizes[0] == sizes[1]
    return sizes[0] if shaped and c.batch_size == BATCH else None


def regime_p2(quick: bool, config: Path) -> dict:
    """(p2): the default loss study with populations and with one process per run."""
    seeds = 2 if quick else 10
    overrides = ["total_env_steps=3000"] if quick else []
    workers = usable_cores()
    job = {
        "worker": "dqn_study",
        "config": str(config),
        "variants": list(STUDY_VARIANTS),
        "seeds": seeds,
        "workers": workers,
        "overrides": overrides,
    }
    runs = {
        runner: timed(f"study, {runner} runner", {**job, "runner": runner}, ONE_THREAD)
        for runner in ("population", "process")
    }
    seconds = 0.5 if quick else 3.0  # of the matmul rate's timing
    study = DQNConfig.from_yaml(config)
    matmul = {"worker": "matmul", "shape": floor_shape(study), "seconds": seconds}
    rate = timed("matmul rate", matmul, ONE_THREAD)
    # The floor's rate: one such process per worker, all at once, their rates added. On a
    # machine whose workers share physical cores (SMT) or a CPU quota, this is less than
    # workers x ``rate``, and the floor must not count cores the study cannot have.
    together = _together(
        f"matmul rate, {workers} processes at once", [matmul] * workers, ONE_THREAD
    )
    # How close a TF learner's step can get to that floor, on this machine: its matmuls alone
    # and its whole step against the floor's rate, for one process's share of the members.
    members = -(-len(STUDY_VARIANTS) * seeds // workers)
    hidden = anatomy_hidden(study)
    anatomy = None
    if hidden is not None:
        anatomy = timed(
            "learner anatomy",
            {"worker": "anatomy", "members": members, "hidden": hidden, "seconds": seconds},
            ONE_THREAD,
        )
    return {
        "runs": runs,
        "rate": rate,
        "together": together,
        "anatomy": anatomy,
        "hidden": hidden,
        "members": members,
        "seeds": seeds,
        "cores": workers,
    }


def regime_p3(quick: bool, config: Path) -> dict:
    """(p3): the trust check, 30 seeds of the default config, with populations."""
    seeds = 2 if quick else 30
    job = {
        "worker": "dqn_study",
        "config": str(config),
        "variants": ["default:"],
        "seeds": seeds,
        "workers": usable_cores(),
        "runner": "population",
        "overrides": ["total_env_steps=3000"] if quick else [],
    }
    return {"run": timed(f"{seeds} seeds, population runner", job, ONE_THREAD), "seeds": seeds}


def floor_rate(r: dict) -> float | None:
    """FLOP/s of the (p2) floor: the rates of its processes measured together, added up.

    Results from before that measurement (no ``"together"``) have the one-thread rate measured
    alone times the cores.
    """
    together = r.get("together")
    if together is not None:
        return None if None in together else sum(t["flops_per_second"] for t in together)
    return r["rate"]["flops_per_second"] * r["cores"] if r.get("rate") else None


def study_floor(run: dict | None, rate: float | None) -> float | None:
    """Seconds the study's gradient steps need at ``rate`` FLOP/s (``floor_rate``)."""
    if run is None or not rate:
        return None
    return sum(run["grad_steps"]) * run["flops_per_step"] / rate
