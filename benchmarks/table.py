"""The benchmark's one markdown table, its notes and the machine line, from the regimes' results.

Every number the table shows is computed here from the workers' raw results (elapsed times,
evaluation curves), so the table can be checked without running anything.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path

from benchmarks.learner_anatomy import BEST, P2_TARGET
from benchmarks.regimes import VECTOR_ENVS
from dqn.runtime import usable_cores

# (e)'s target was first set against CleanRL's dqn.py; it applies to the ratio against SB3.
TARGETS = {"a": "<= 0.3", "b": ">= 4", "c": ">= 4", "d": "<= 0.3", "e": ">= 3", "f": "<= 1.1"}
TARGETS.update({"p1": ">= 20", "p2": f"<= {P2_TARGET} floor"})


def first_solve(curve: Sequence[Sequence[float]], threshold: float) -> tuple[int, float] | None:
    """(env step, train seconds) of the first evaluation whose mean is >= threshold, else None.

    ``curve`` rows are (env_step, eval_mean, train_seconds_so_far).
    """
    for step, mean, seconds in curve:
        if mean >= threshold:
            return int(step), float(seconds)
    return None


def solve_summary(out: dict | None) -> dict | None:
    """Medians over seeds (a seed that never solves counts as infinitely slow) and end counts."""
    if out is None:
        return None
    solves, finals = [], []
    for run in out["runs"]:
        hit = first_solve(run["curve"], run["threshold"])
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


def table(results: dict, quick: bool, config: str = "configs/cartpole.yaml") -> str:
    """The markdown table (and its notes) of whatever regimes ran; ``config``: the dqn config
    of (d), (p2) and (p3), as its rows name it."""
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
        add(
            f"(a) zoo: {s.total_env_steps:,} steps, 256x256, 128 grad steps / 256 env steps",
            "train wall s (lower is better)",
            fmt(d),
            fmt(b),
            ratio(d, b),
            TARGETS["a"],
        )
        add(
            "(a) the same, dqn with learner: numpy", "train wall s", fmt(n), fmt(b), ratio(n, b), ""
        )
        floor = r["floor_seconds"]
        if floor:
            add(
                f"(a) compute floor: {fmt(floor)} s (see below)",
                "wall / floor (dqn: TF)",
                ratio(d, floor),
                ratio(b, floor),
                "",
                "",
            )
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
            d, n, b = (
                r["measured"] / (x["elapsed"][1] - x["elapsed"][0]) if x else None
                for x in (r["dqn"], r["dqn_numpy"], r["sb3"])
            )
            note_threads(r["dqn"], r["sb3"])
            add(
                f"({key}) 64x64, batch 64, 1 grad step {what}, target copy / 500 steps",
                f"env steps/s over {r['measured']:,} steps after warm-up",
                fmt(d, 0),
                fmt(b, 0),
                ratio(d, b),
                TARGETS[key],
            )
            add(
                f"({key}) the same, dqn with learner: numpy",
                "env steps/s",
                fmt(n, 0),
                fmt(b, 0),
                ratio(n, b),
                TARGETS[key],
            )
    if "d" in results:
        r = results["d"]
        d, b = solve_summary(r["dqn"]), solve_summary(r["sb3"])
        note_threads(r["dqn"], r["sb3"])
        summary = r["dqn"]["config_summary"] if r["dqn"] else "?"
        first = f"(d) dqn: {config} ({summary}); SB3: zoo; {r['seeds']} seeds"
        g = lambda x, k: x[k] if x else None
        add(
            first,
            "median train wall s to first eval >= 475",
            fmt(g(d, "seconds")),
            fmt(g(b, "seconds")),
            ratio(g(d, "seconds"), g(b, "seconds")),
            TARGETS["d"],
        )
        add(
            "(d)",
            "median env steps to first eval >= 475",
            fmt(g(d, "steps"), 0),
            fmt(g(b, "steps"), 0),
            ratio(g(d, "steps"), g(b, "steps")),
        )
        for key, measure in (("solved", "seeds that solved"), ("stable", "seeds >= 475 at end")):
            add(
                "(d)",
                measure,
                f"{d[key]}/{d['n']}" if d else "failed",
                f"{b[key]}/{b['n']}" if b else "failed",
                "",
                "all" if key == "stable" else "",
            )
        add(
            "(d)",
            "mean final eval return",
            fmt(g(d, "final_mean")),
            fmt(g(b, "final_mean")),
            ratio(g(d, "final_mean"), g(b, "final_mean")),
        )
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
        rate = lambda x: s.total_env_steps / x["elapsed"][0] if x else None
        d, n, b = rate(r["dqn"]), rate(r["dqn_numpy"]), rate(r["sb3"])
        v = r["vector"]["env_steps"] / r["vector"]["seconds"] if r["vector"] else None
        note_threads(r["dqn"], r["sb3"])
        add(
            f"(e) CleanRL settings: {s.total_env_steps:,} steps, "
            f"{'x'.join(map(str, s.hidden_sizes))}, batch {s.batch_size}, "
            f"1 grad step / {s.train_every_env_steps} env steps",
            "env steps/s (whole run)",
            fmt(d, 0),
            fmt(b, 0),
            ratio(d, b),
            TARGETS["e"],
        )
        add(
            "(e) the same, dqn with learner: numpy",
            "env steps/s",
            fmt(n, 0),
            fmt(b, 0),
            ratio(n, b),
            TARGETS["e"],
        )
        add(
            f"(e) the same, learner: numpy, num_envs: {VECTOR_ENVS} (vectorized; SB3: 1 env)",
            "env steps/s",
            fmt(v, 0),
            fmt(b, 0),
            ratio(v, b),
            TARGETS["e"],
        )
        extra.append(
            "- (e): both libraries run CleanRL dqn.py's settings in this run, timed by the same "
            "step clock over the whole run (first reset to last env step), SB3 with one env in "
            "all three rows. The losses differ, as no setting can make them equal: dqn runs "
            "its l2 loss, 0.5 e^2 (CleanRL's F.mse_loss is e^2: the gradient differs by a "
            "factor 2, which Adam cancels up to its epsilon), SB3 its only loss, Huber (delta "
            "1); either is a few elementwise operations on a batch, and the number and size of the "
            "updates are the same. No gradient clipping in dqn; SB3 always clips, here at an "
            "infinite norm (it computes the norm and scales by 1). The "
            f"vectorized row steps {VECTOR_ENVS} CartPole copies in gymnasium's vector "
            f"implementation, so an update can only come between loop steps of {VECTOR_ENVS} "
            "transitions (the ratio of updates to transitions is unchanged); it is timed by "
            "dqn's own training clock (first reset to last step, the final evaluation "
            "excluded). The target >= 3 was first set against CleanRL's dqn.py, which is a "
            "script, not a package, and is not run here; it applies to the ratio against SB3."
        )
    if "f" in results:
        runs_f = {k: [x for x in v if x] for k, v in results["f"].items()}
        seconds = {k: [x["seconds"] for x in v] for k, v in runs_f.items()}
        waits = {
            k: [x.get("wait_seconds") for x in v if x.get("wait_seconds")]
            for k, v in runs_f.items()
        }
        fresh, warm = (median_or_none(seconds[k]) for k in ("fresh", "warm"))
        wait_fresh, wait_warm = (median_or_none(waits[k]) for k in ("fresh", "warm"))
        runs = ", ".join(f"{x:.1f}" for x in seconds["warm"])
        learners = sorted({x.get("learner", "?") for x in runs_f["warm"]})
        add(
            "(f) library path: default config, fresh process (the CLI's path)",
            "median train wall s",
            fmt(fresh),
            "-",
            "",
            "",
        )
        add(
            f"(f) the same, TensorFlow ran before train (runs: {runs})",
            "median train wall s",
            fmt(warm),
            "-",
            ratio(warm, fresh) + " of fresh",
            TARGETS["f"],
        )
        if wait_fresh and wait_warm:
            add(
                "(f) the same, from the caller's last line to train's return",
                "median wait s (fresh / TF first)",
                f"{wait_fresh:.1f} / {wait_warm:.1f}",
                "-",
                ratio(wait_warm, wait_fresh) + " of fresh",
                "",
            )
        extra.append(
            "- (f): dqn against itself, no SB3. The default config (seed 4), each run in a "
            "process of its own, alternating: fresh processes, and processes that ran a "
            "TensorFlow operation before train (TensorFlow's thread pools are then fixed; the "
            f"learner then ran as {', '.join(learners)}). The ratio is TF first / fresh. The "
            "wait row also counts what dqn does before its clock starts: TensorFlow's import "
            "in a fresh process, the learner process's start when TensorFlow ran first."
        )
    population_rows(results, add, extra, config)
    if threads["dqn"] or threads["sb3"]:  # the single-run regimes' thread settings
        add("threads", "", threads["dqn"] or "-", threads["sb3"] or "-", "", "")
    lines = ["\n".join(rows), "", *notes(quick, extra)]
    return "\n".join(lines) + "\n"


def population_rows(
    results: dict, add, extra: list[str], config: str = "configs/cartpole.yaml"
) -> None:
    """The rows of (p1), (p2), (p3) (``benchmarks.populations``); ``config`` as ``table``'s."""
    from benchmarks.populations import (
        aggregate_rate,
        floor_rate,
        round_ratios,
        sb3_rate,
        study_floor,
    )

    if "p1" in results:
        for key, r in results["p1"].items():
            rounds = r.get("rounds", [r["runs"]])
            sb3 = [sb3_rate(runs, r["measured"]) for runs in rounds]
            for layout, run in r["runs"].items():
                if layout == "sb3":
                    continue
                learner, how = layout.split("/")
                label = f"(p1) ({key})'s settings, {r['members']} members, learner {learner}, {how}"
                if all(layout in runs for runs in rounds[1:]) and len(rounds) > 1:
                    rates = [aggregate_rate(runs[layout], r["measured"]) for runs in rounds]
                    ratios = round_ratios(r, layout)
                    shown = "-"
                    if ratios is not None:
                        each = ", ".join(f"{x:.2f}x" for x in ratios)
                        shown = f"{statistics.median(ratios):.2f}x (rounds: {each})"
                    add(
                        f"{label}, median of {len(rounds)} rounds",
                        "aggregate env steps/s (SB3: one run a round)",
                        fmt(None if None in rates else median_or_none(rates), 0),
                        fmt(None if None in sb3 else median_or_none(sb3), 0),
                        shown,
                        TARGETS["p1"],
                    )
                    continue
                add(
                    label,
                    "aggregate env steps/s (SB3: one run)",
                    fmt(aggregate_rate(run, r["measured"]), 0),
                    fmt(sb3[0], 0),
                    ratio(aggregate_rate(run, r["measured"]), sb3[0]),
                    TARGETS["p1"],
                )
        extra.append(
            "- (p1): a population trains its members in lockstep in one program; its rate is "
            "every member's env steps over the measured window, timed by the population's "
            "progress callback at the end of the loop steps of the two marks (when every member "
            "has stepped, acted and learned; its plain CartPoles step in one numpy pass, which "
            'a clock wrapper around each env would turn off). "2 processes" runs two populations '
            "of half the members at the same time, one thread each, and adds their rates; "
            '"2 threads" gives TensorFlow (intra- and inter-op) and BLAS two threads in one '
            "process. SB3 is one run of the same settings, in this benchmark run. The "
            '"2 processes" layouts run in rounds, each round an SB3 run and then each '
            "learner's pair: the ratio is taken within a round (the machine's speed drifts "
            "between rounds, for SB3 and dqn alike), and the row gives the median of the "
            "rounds' rates and ratios, and every round's ratio."
        )
    if "p2" in results:
        r = results["p2"]
        pop, proc = r["runs"]["population"], r["runs"]["process"]
        floor_flops = floor_rate(r)
        floor = study_floor(pop, floor_flops)
        wall = lambda x: x["wall_seconds"] if x else None  # noqa: E731
        add(
            f"(p2) loss study: 5 variants x {r['seeds']} seeds, {config}, "
            "populations (dqn-compare's default)",
            "wall s / compute floor",
            fmt(wall(pop)),
            "-",
            ratio(wall(pop), floor) + " of floor" if floor else "-",
            TARGETS["p2"],
        )
        add(
            "(p2) the same, one process per run (--runner process)",
            "wall s; populations' speed-up",
            fmt(wall(proc)),
            "-",
            ratio(wall(proc), wall(pop)),
            "",
        )
        timings = (pop or {}).get("timings") or []
        if timings:
            n = len(timings)
            mean = lambda key: sum(t[key] for t in timings) / n  # noqa: E731
            loop, learner, evals = (
                mean("loop_seconds"),
                mean("learner_seconds"),
                mean("evaluation_seconds"),
            )
            # Older results did not time the diagnostics probe apart: it is in their rest.
            probe = all("diagnostics_seconds" in t for t in timings)
            parts = [learner, evals, *([mean("diagnostics_seconds")] if probe else [])]
            parts.append(loop - sum(parts))
            names = "learner / evaluations / " + ("diagnostics probe / " if probe else "")
            sizes = ", ".join(str(m) for m in sorted({t["members"] for t in timings}))
            add(
                f"(p2) where a population's loop went, mean of its {n} chunks of "
                f"{sizes} members: {names}the rest",
                "s (share of the loop)",
                " / ".join(f"{x:.1f} ({x / loop:.0%})" for x in parts),
                "-",
                f"loop {loop:.1f} s",
                "",
            )
            probe_part = "the diagnostics probe (per-layer gradient norms, dead units), "
            rest_part = "acting, env steps, replay, " + ("" if probe else "the diagnostics probe, ")
            extra.append(
                "- (p2) a population's loop: its own timing (`timing.json` in the population "
                "folder): the learner's calls (the first one includes tracing and XLA "
                f"compilation, {mean('first_learner_call_seconds'):.1f} s), the evaluations "
                f"(greedy episodes), {probe_part if probe else ''}and the rest of the loop "
                f"({rest_part}checkpoints, logs). Outside the loop and in the study's wall time: "
                "process start, TensorFlow import, building the members, the report."
            )
        an = r.get("anatomy")
        # "The floor's rate" in these rows is the one the floor is priced at, per core: the
        # anatomy's own numpy figure, measured alone in its process, is another number (close,
        # not equal), and rows naming both the floor's rate disagreed with the floor's row.
        core = floor_flops / r["cores"] / 1e9 if floor_flops else None  # GFLOP/s
        if an:
            h = r.get("hidden", 256)  # results from before the width was recorded: the default
            for label, rate in (
                ("(p2) a TF learner's matmuls alone", an["xla"]),
                ("(p2) a TF learner's whole population step", an["step"]),
            ):
                add(
                    f"{label}, {r['members']} members of [{h}, {h}] (benchmarks.learner_anatomy)",
                    "GFLOP/s (numpy: the floor's rate, per core)",
                    fmt(rate),
                    fmt(core),
                    ratio(core, rate) + " of floor" if core else "-",
                    "",
                )
            if "adam_fraction" in an:  # results from before this measurement lack it
                add(
                    "(p2) of that whole step, Adam's update: the step with a plain gradient "
                    "step in its place, timed alternately (benchmarks.learner_anatomy)",
                    "share of the step's time",
                    f"{an['adam_fraction']:.0%}",
                    "-",
                    "",
                    "",
                )
            if "best" in an:  # results from before the core's best rate was measured lack it
                add(
                    f"(p2) the core's best float32 matmul rate: numpy [{BEST}, {BEST}] x "
                    f"[{BEST}, {BEST}] (benchmarks.learner_anatomy)",
                    "GFLOP/s (numpy: the floor's rate, per core)",
                    fmt(an["best"]),
                    fmt(core),
                    f"the floor's rate is {core / an['best']:.0%} of it" if core else "-",
                    "",
                )
            # The floor is priced at numpy's rate. Where XLA's code for a CPU multiplies faster
            # than numpy's BLAS does on it (as on an AVX-512 EPYC whose OpenBLAS reports its
            # Haswell kernels), that rate is not what the core can do, and a floor the learner's
            # matmuls beat is no floor: so the study is also held against the floor at the
            # fastest one-thread rate of this run on every core (the floor x the floor's rate
            # per core / the fastest).
            fastest = max(an["xla"], an.get("best", 0.0))
            if floor and fastest > core:
                which = "XLA's batched products" if fastest == an["xla"] else "numpy [1024, 1024]"
                add(
                    f"(p2) the loss study against its floor at the fastest one-thread matmul "
                    f"rate of this run ({which}, {fastest / core:.2f}x the floor's rate per core)",
                    "wall s / that floor",
                    fmt(wall(pop)),
                    "-",
                    ratio(wall(pop), floor * core / fastest) + " of that floor",
                    "",
                )
            extra.append(
                "- (p2) learner anatomy: in one process, one thread, side by side: numpy's "
                f"[64, {h}] x [{h}, {h}] matmul ({an['numpy']:.1f} GFLOP/s, alone; the rows "
                "hold the others to the floor's rate per core, the floor's GFLOP/s / cores), "
                "XLA's batched matmuls of a step's four hidden-layer products (forward of the "
                "online and target nets, dx, dW) in a compiled loop with nothing else, and the "
                "whole population step of that many members. A TensorFlow learner's study "
                "cannot come closer to its floor than its matmuls' ratio. A study at x times "
                "its floor ran its matmul FLOPs at the floor's rate / x over its wall time on "
                "all cores: "
                f"{P2_TARGET}x asks for {1 / P2_TARGET:.0%} of the floor's rate, whose share of "
                "the core's best rate the best-rate row gives."
            )
        together = r.get("together")
        alone = r["rate"]["flops_per_second"] * r["cores"] if r.get("rate") else None
        if together is not None:  # results from before this measurement lack it
            add(
                f"(p2) the floor's rate: {r['cores']} one-thread processes at once, added up, "
                f"against {r['cores']} x one alone",
                "GFLOP/s",
                fmt(floor_flops / 1e9 if floor_flops else None),
                fmt(alone / 1e9 if alone else None),
                ratio(floor_flops, alone),
                "",
            )
        if floor:
            how = (
                f"{r['cores']} processes of it at once, added up"
                if together is not None
                else f"one process alone x {r['cores']} cores"
            )
            extra.append(
                f"- (p2): the compute floor is {fmt(floor)} s: the {sum(pop['grad_steps']):,} "
                f"gradient steps the population study's runs took x "
                f"{pop['flops_per_step'] / 1e6:.1f} MFLOP of matmuls each, at "
                f"{floor_flops / 1e9:.1f} GFLOP/s ({r['rate']['how']}, {how}, measured in this "
                "run; the study runs as many worker processes). Wall times hold everything: "
                "process start, TensorFlow import, evaluation (10 episodes every 2,500 env steps, "
                "100 at the end), checkpoints, the report and figures."
            )
    if "p3" in results:
        r = results["p3"]
        run = r["run"]
        solved = sum(f >= 475.0 for f in run["final_evals"]) if run else None
        add(
            f"(p3) trust check: {config} x {r['seeds']} seeds, populations",
            "wall s; runs >= 475 at the end",
            fmt(run["wall_seconds"]) if run else "failed",
            "-",
            f"{solved}/{r['seeds']}" if run else "",
            "",
        )


def median_or_none(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def notes(quick: bool, extra: list[str]) -> list[str]:
    out = []
    if quick:
        out.append(
            "**--quick: tiny step counts; these numbers check that the benchmark runs, "
            "they measure nothing.**"
        )
        out.append("")
    out += [
        "- Same hyperparameters in both libraries (Adam eps 1e-8, tau 1, one-step targets, no "
        "double DQN; Huber and max grad norm 10 except in (e), see below); each run in its own "
        "process. Times come from the same wrapper around the training env (wall time after "
        "each env step), "
        "so they hold everything a library does per step; start-up and XLA compilation are "
        "inside (a), (d), (e), and inside the warm-up that (b) and (c) leave out.",
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
        f"Machine: {cpu}, {os.cpu_count()} CPUs ({usable_cores()} usable); "
        f"Python {platform.python_version()}, "
        f"TensorFlow {v('tensorflow')}, Keras {v('keras')}, torch {v('torch')}, "
        f"Stable-Baselines3 {v('stable-baselines3')}, gymnasium {v('gymnasium')}; "
        f"{datetime.now():%Y-%m-%d %H:%M}; `python -m benchmarks.bench {' '.join(sys.argv[1:])}`"
    )
