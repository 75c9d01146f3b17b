"""dqn against Stable-Baselines3, side by side on this machine: ``python scripts/bench.py``.

Runs each regime with both libraries one after the other (each run in its own process) and
prints one markdown table with both numbers and their ratio:

  (a) rl-baselines3-zoo CartPole-v1 settings: wall seconds for 50k env steps, and the compute floor
  (b) one gradient step per env step, [64, 64] net: env steps/s
  (c) one gradient step per 4 env steps: env steps/s
  (d) configs/cartpole.yaml over N seeds (SB3 on its zoo settings): time to first solve, final eval
  (e) CleanRL's dqn.py settings: env steps/s against the figure quoted in issue 5 (not run here)

(a), (b), (c) and (e) also run dqn with ``learner: numpy``; (e) also with 8 vectorized envs.

    python scripts/bench.py                  # everything (about 10-15 minutes on 2 quiet cores)
    python scripts/bench.py --quick          # tiny step counts: checks that it all runs
    python scripts/bench.py --regimes a,d --seeds 3 --out results/bench.md

Needs the "bench" extra (``pip install -e ".[bench]"`` or ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

from dqn import bench

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "cartpole.yaml"
REGIMES = ("a", "b", "c", "d", "e")
CLEANRL_STEPS_PER_SECOND = 8_100  # issue 5: CleanRL dqn.py on this kind of machine (gymnasium 0.29)
EVAL = {"eval_every_env_steps": 2_500, "eval_episodes": 10, "eval_seed": 10_000}
WARMUP_ENV_STEPS, MEASURED_ENV_STEPS = 1_000, 10_000  # (b), (c): timed after learning starts
TARGETS = {"a": "<= 0.3", "b": ">= 4", "c": ">= 4", "d": "<= 0.3", "e": ">= 3"}


# ---------------------------------------------------------------------- running workers
def run_worker(job: dict, extra_env: dict | None = None) -> dict:
    """Run one job in a fresh ``python -m dqn.bench`` process; its JSON result, or an error."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "dqn.bench", json.dumps(job)],
        capture_output=True, text=True, env=env, cwd=REPO,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(bench.RESULT_PREFIX):
            return json.loads(line[len(bench.RESULT_PREFIX):])
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    raise RuntimeError(f"worker {job['worker']} failed (exit {proc.returncode}):\n{tail}")


def timed(label: str, job: dict, extra_env: dict | None = None) -> dict | None:
    """run_worker with a progress line on stderr; None (and the error on stderr) if it failed."""
    print(f"  {label} ...", end="", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        out = run_worker(job, extra_env)
    except RuntimeError as exc:
        print(f" FAILED\n{exc}", file=sys.stderr)
        return None
    print(f" {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


NUMPY = {"learner": "numpy"}
VECTOR_ENVS = 8  # (e), vectorized: envs stepped together


def throughput_runs(settings: bench.Settings, marks: list[int], config: Path) -> dict:
    """dqn (as configured: the TensorFlow learner), dqn with the numpy learner, and SB3."""
    job = {"settings": settings.to_dict(), "seed": 0, "marks": marks}
    dqn_job = {**job, "worker": "dqn_throughput", "config": str(config)}
    return {
        "dqn": timed("dqn", dqn_job),
        "dqn_numpy": timed("dqn, learner numpy", {**dqn_job, "overrides": NUMPY}),
        "sb3": timed("SB3", {**job, "worker": "sb3_throughput", "torch_threads": 1}),
    }


# ---------------------------------------------------------------------- regimes
def regime_a(quick: bool, config: Path) -> dict:
    s = bench.ZOO.replace(total_env_steps=3_000) if quick else bench.ZOO
    runs = throughput_runs(s, [s.total_env_steps], config)
    shape = (s.batch_size, s.hidden_sizes[0], s.hidden_sizes[1])
    rate = timed(
        "matmul rate", {"worker": "matmul", "shape": shape, "seconds": 0.5 if quick else 3.0},
        # One BLAS thread, like both libraries.
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    flops = bench.grad_step_flops(4, s.hidden_sizes, 2, s.batch_size)
    steps = bench.grad_steps_within(s)
    return {
        "settings": s, **runs, "grad_steps": steps, "flops_per_step": flops, "rate": rate,
        "floor_seconds": steps * flops / rate["flops_per_second"] if rate else None,
    }


def regime_rate(s: bench.Settings, quick: bool, config: Path) -> dict:
    warmup, measured = (200, 1_000) if quick else (WARMUP_ENV_STEPS, MEASURED_ENV_STEPS)
    if quick:
        s = s.replace(learning_starts_env_steps=500)
    first = s.learning_starts_env_steps + warmup
    s = s.replace(total_env_steps=first + measured)
    runs = throughput_runs(s, [first, first + measured], config)
    return {"settings": s, **runs, "measured": measured}


def regime_d(quick: bool, config: Path, seeds: int) -> dict:
    evaluation = {**EVAL, "eval_every_env_steps": 1_000} if quick else EVAL
    total = 3_000 if quick else None
    job = {"seeds": list(range(seeds)), **evaluation}
    dqn = timed(
        f"dqn x {seeds} seeds",
        {**job, "worker": "dqn_solve", "config": str(config), "total_env_steps": total},
    )
    zoo = bench.ZOO.replace(total_env_steps=total) if quick else bench.ZOO
    sb3 = timed(
        f"SB3 x {seeds} seeds",
        {**job, "worker": "sb3_solve", "settings": zoo.to_dict(), "torch_threads": 1},
    )
    return {"dqn": dqn, "sb3": sb3, "seeds": seeds, "eval": evaluation}


def regime_e(quick: bool, config: Path) -> dict:
    s = bench.CLEANRL
    if quick:
        s = s.replace(total_env_steps=3_000, learning_starts_env_steps=1_000)
    job = {"settings": s.to_dict(), "seed": 0, "marks": [s.total_env_steps], "config": str(config)}
    dqn = timed("dqn", {**job, "worker": "dqn_throughput"})
    dqn_numpy = timed("dqn, learner numpy", {**job, "worker": "dqn_throughput", "overrides": NUMPY})
    vector = timed(
        f"dqn, learner numpy, {VECTOR_ENVS} envs",
        {**job, "worker": "dqn_vector", "overrides": {**NUMPY, "num_envs": VECTOR_ENVS}},
    )
    return {"settings": s, "dqn": dqn, "dqn_numpy": dqn_numpy, "vector": vector}


# ---------------------------------------------------------------------- summaries
def solve_summary(out: dict | None) -> dict | None:
    """Medians over seeds (a seed that never solves counts as infinitely slow) and end counts."""
    if out is None:
        return None
    solves, finals = [], []
    for run in out["runs"]:
        hit = bench.first_solve(run["curve"], run["threshold"])
        solves.append(hit if hit else (float("inf"), float("inf")))
        finals.append((run["curve"][-1][1], run["threshold"]))
    return {
        "steps": statistics.median(s for s, _ in solves),
        "seconds": statistics.median(t for _, t in solves),
        "solved": sum(s != float("inf") for s, _ in solves),
        "stable": sum(f >= thr for f, thr in finals),
        "final_mean": statistics.fmean(f for f, _ in finals),
        "n": len(finals),
    }


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "failed"
    if x == float("inf"):
        return "never"
    return f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or float("inf") in (a, b):
        return "-"
    return f"{a / b:.2f}x"


def table(results: dict, quick: bool) -> str:
    """The markdown table (and its notes) of whatever regimes ran."""
    rows = [
        "| regime | measure | dqn | SB3 | dqn / SB3 | target |",
        "| --- | --- | ---: | ---: | ---: | :---: |",
    ]
    threads = {"dqn": None, "sb3": None}
    extra: list[str] = []

    def add(regime, measure, d, s, r, target=""):
        rows.append(f"| {regime} | {measure} | {d} | {s} | {r} | {target} |")

    def note_threads(*outs):
        for lib, out in zip(("dqn", "sb3"), outs):
            if out and threads[lib] is None:
                threads[lib] = out["threads"]

    if "a" in results:
        r = results["a"]
        s = r["settings"]
        d, n, b = (x["elapsed"][0] if x else None for x in (r["dqn"], r["dqn_numpy"], r["sb3"]))
        note_threads(r["dqn"], r["sb3"])
        add(f"(a) zoo: {s.total_env_steps:,} steps, 256x256, 128 grad steps / 256 env steps",
            "train wall s (lower is better)", fmt(d), fmt(b), ratio(d, b), TARGETS["a"])
        add("(a) the same, dqn with learner: numpy", "train wall s", fmt(n), fmt(b), ratio(n, b),
            "")
        floor = r["floor_seconds"]
        if floor:
            add(f"(a) compute floor: {fmt(floor)} s (see below)", "wall / floor (dqn: TF)",
                ratio(d, floor), ratio(b, floor), "", "")
            extra.append(
                f"- Compute floor of (a): {r['grad_steps']:,} gradient steps x "
                f"{r['flops_per_step'] / 1e6:.1f} MFLOP = "
                f"{r['grad_steps'] * r['flops_per_step'] / 1e9:.0f} GFLOP, at "
                f"{r['rate']['flops_per_second'] / 1e9:.1f} GFLOP/s ({r['rate']['how']}, "
                f"measured in this run) = {floor:.1f} s. It counts only the matmuls of the forward "
                "(online net on s, target net on s') and backward (dW and dx per layer) passes."
            )
    for key, what in (("b", "every env step"), ("c", "every 4 env steps")):
        if key in results:
            r = results[key]
            d, n, b = (r["measured"] / (x["elapsed"][1] - x["elapsed"][0]) if x else None
                       for x in (r["dqn"], r["dqn_numpy"], r["sb3"]))
            note_threads(r["dqn"], r["sb3"])
            add(f"({key}) 64x64, batch 64, 1 grad step {what}, target copy / 500 steps",
                f"env steps/s over {r['measured']:,} steps after warm-up", fmt(d, 0), fmt(b, 0),
                ratio(d, b), TARGETS[key])
            add(f"({key}) the same, dqn with learner: numpy", "env steps/s", fmt(n, 0),
                fmt(b, 0), ratio(n, b), TARGETS[key])
    if "d" in results:
        r = results["d"]
        d, b = solve_summary(r["dqn"]), solve_summary(r["sb3"])
        note_threads(r["dqn"], r["sb3"])
        config = r["dqn"]["config_summary"] if r["dqn"] else "?"
        first = f"(d) dqn: cartpole.yaml ({config}); SB3: zoo; {r['seeds']} seeds"
        g = (lambda x, k: x[k] if x else None)
        add(first, "median train wall s to first eval >= 475", fmt(g(d, "seconds")),
            fmt(g(b, "seconds")), ratio(g(d, "seconds"), g(b, "seconds")), TARGETS["d"])
        add("(d)", "median env steps to first eval >= 475", fmt(g(d, "steps"), 0),
            fmt(g(b, "steps"), 0), ratio(g(d, "steps"), g(b, "steps")))
        for key, measure in (("solved", "seeds that solved"), ("stable", "seeds >= 475 at end")):
            add("(d)", measure, f"{d[key]}/{d['n']}" if d else "failed",
                f"{b[key]}/{b['n']}" if b else "failed", "", "all" if key == "stable" else "")
        add("(d)", "mean final eval return", fmt(g(d, "final_mean")), fmt(g(b, "final_mean")),
            ratio(g(d, "final_mean"), g(b, "final_mean")))
        extra.append(
            f"- (d): evaluation every {r['eval']['eval_every_env_steps']:,} env steps, "
            f"{r['eval']['eval_episodes']} greedy episodes on a separate env, episode i seeded "
            f"{r['eval']['eval_seed']} + i; evaluation time is excluded. dqn's in-run checkpoints "
            "and TensorBoard are off (SB3 writes neither); its per-evaluation diagnostics stay in "
            "its time. A seed that never solves counts as infinitely slow in the medians."
        )
    if "e" in results:
        r = results["e"]
        s = r["settings"]
        quoted = f"{CLEANRL_STEPS_PER_SECOND:,} (CleanRL, quoted in issue 5, not run here)"
        rate = (lambda x: s.total_env_steps / x["elapsed"][0] if x else None)
        d, n = rate(r["dqn"]), rate(r["dqn_numpy"])
        v = r["vector"]["env_steps"] / r["vector"]["seconds"] if r["vector"] else None
        note_threads(r["dqn"], None)
        add(f"(e) CleanRL settings: {s.total_env_steps:,} steps, 120x84, batch 128, "
            "1 grad step / 10 env steps", "env steps/s (whole run)", fmt(d, 0), quoted,
            ratio(d, CLEANRL_STEPS_PER_SECOND), TARGETS["e"])
        add("(e) the same, dqn with learner: numpy", "env steps/s", fmt(n, 0), quoted,
            ratio(n, CLEANRL_STEPS_PER_SECOND), TARGETS["e"])
        add(f"(e) the same, learner: numpy, num_envs: {VECTOR_ENVS} (vectorized)",
            "env steps/s", fmt(v, 0), quoted, ratio(v, CLEANRL_STEPS_PER_SECOND), TARGETS["e"])
        extra.append(
            "- (e): CleanRL's figure is quoted from issue 5, not measured here. dqn runs CleanRL's "
            "settings with its l2 loss, 0.5 e^2, where CleanRL's F.mse_loss is e^2: the gradient "
            "differs by a factor 2, which Adam cancels up to its epsilon. The vectorized row "
            f"steps {VECTOR_ENVS} CartPole copies in gymnasium's vector implementation, so an "
            f"update can only come between loop steps of {VECTOR_ENVS} transitions (the ratio "
            "of updates to transitions is unchanged); it is timed by dqn's own training clock "
            "(first reset to last step, the final evaluation excluded)."
        )
    add("threads", "", threads["dqn"] or "-", threads["sb3"] or "-", "", "")
    lines = ["\n".join(rows), "", *notes(quick, extra)]
    return "\n".join(lines) + "\n"


def notes(quick: bool, extra: list[str]) -> list[str]:
    out = []
    if quick:
        out.append("**--quick: tiny step counts; these numbers check that the benchmark runs, "
                   "they measure nothing.**")
        out.append("")
    out += [
        "- Same hyperparameters in both libraries (Adam eps 1e-8, Huber, max grad norm 10, tau 1, "
        "no double DQN); each run in its own process. Times come from the same wrapper around the "
        "training env (wall time after each env step), so they hold everything a library does "
        "per step; start-up and XLA compilation are inside (a), (d), (e), and inside the warm-up "
        "that (b) and (c) leave out.",
        *extra,
        "",
        machine(),
    ]
    return out


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def v(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    return (
        f"Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"TensorFlow {v('tensorflow')}, Keras {v('keras')}, torch {v('torch')}, "
        f"Stable-Baselines3 {v('stable-baselines3')}, gymnasium {v('gymnasium')}; "
        f"{datetime.now():%Y-%m-%d %H:%M}; `python scripts/bench.py {' '.join(sys.argv[1:])}`"
    )


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny step counts, to check it runs")
    p.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated, of a,b,c,d,e")
    p.add_argument("--seeds", type=int, help="seeds of (d) (default 5; 2 with --quick)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="dqn config of (d)")
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = p.parse_args(argv)
    args.regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    bad = [r for r in args.regimes if r not in REGIMES]
    if bad:
        p.error(f"unknown regime {bad[0]!r}; choose from {','.join(REGIMES)}")
    if args.seeds is None:
        args.seeds = 2 if args.quick else 5
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hint = bench.missing_extra()
    if hint:
        print(hint, file=sys.stderr)
        return 2
    results = {}
    for key in args.regimes:
        print(f"({key})", file=sys.stderr)
        if key == "a":
            results[key] = regime_a(args.quick, args.config)
        elif key in ("b", "c"):
            s = bench.EVERY_STEP if key == "b" else bench.EVERY_4_STEPS
            results[key] = regime_rate(s, args.quick, args.config)
        elif key == "d":
            results[key] = regime_d(args.quick, args.config, args.seeds)
        else:
            results[key] = regime_e(args.quick, args.config)
    text = table(results, args.quick)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
