"""A study: variants x seeds of one config, run resumably (``dqn.study_runs``); one row per run,
results.csv and results.json, the summary with its statistics, and the figures.

A variant is a label plus config overrides (``"l2+clip:loss=l2,max_grad_norm=10"``). Every
finished run leaves ``runs/<variant>-seed<k>/result.json`` (written atomically), so an
interrupted comparison restarts where it stopped and never redoes a finished run; a run
folder trained with other settings is refused, neither reused nor overwritten.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dqn.agent_files import STUDY_RUN
from dqn.config import FIELDS, LOSS_NAMES, DQNConfig, check_flag, parse_overrides
from dqn.errors import ConfigError, DQNError, StudyInterrupted, WorkerError, few, shown
from dqn.io import atomic_write_text, hold_folders, strict_json
from dqn.members import check_label, configured, first_repeat
from dqn.report import STUDY_FIGURES, run_name
from dqn.study_runs import (
    BACKENDS,
    RESULT_COLUMNS,
    RUNNERS,
    Job,
    TaskFailed,
    TaskInterrupted,
    backend_runner,
    failure_message,
    make_tasks,
    read_result,
    run_is_missing,
    settings_difference,
    summarize_run,  # noqa: F401 (results.csv columns, re-exported)
    task_configs,
    task_runs,
    task_steps_done,
    write_plans,
)
from dqn.terminal import progress_bar
from dqn.yaml_files import load_yaml

DEFAULT_VARIANTS = (
    "l2",
    "clipped_delta",
    "huber",
    "clipped_grad",
    "l2+gradclip:loss=l2,max_grad_norm=10",
)


# The files that hold a study's results, which its runs/ must back.
RESULT_FILES = frozenset({"results.csv", "results.json", "summary.md"})
# What a study writes at the top of its folder (besides dot-files: its lock, temporary files).
# Anything else there is someone else's, and a study is not written among it.
STUDY_ENTRIES = frozenset({"runs", "populations", *RESULT_FILES, *STUDY_FIGURES})
# Seeds a study takes: 10,000 x the default 5 variants is 50,000 runs, far past any study this
# package has run; a larger count is a typo (10**8 once spent minutes before any output).
MAX_SEEDS = 10_000


# Config keys a study sets itself, so that an override of them (a variant's or --set) would be
# ignored without a word: refused, saying what sets them.
STUDY_OWNS = {
    "seed": "every variant runs on the same seeds, set with --seeds and --first-seed "
    "(the seeds of run_comparison)",
    "output_dir": "a study writes every run under its own folder (--out, run_comparison's out_dir)",
}


@dataclass(frozen=True)
class Variant:
    label: str
    overrides: tuple[tuple[str, Any], ...]

    def __post_init__(self) -> None:
        check_label(self.label, "variant label")
        for key, _ in self.overrides:
            if not isinstance(key, str):
                raise ConfigError(
                    f"variant {self.label!r}: config keys must be strings, got {key!r}"
                )
            if key in STUDY_OWNS:
                raise ConfigError(f"variant {self.label!r} sets {key!r}: {STUDY_OWNS[key]}")

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``"huber"`` (a loss name) or ``"label:key=value,key=value"``; a comma inside
        brackets belongs to its value (``"wide:hidden_sizes=[512,512],loss=l2"``)."""
        label, sep, rest = text.partition(":")
        label = label.strip()
        if not label:
            raise ConfigError(f"variant {text!r} has no name")
        if not sep:
            return cls(label, (("loss", label),))
        items = [item for item in _split_top_level(rest) if item.strip()]
        if not items and label in LOSS_NAMES:  # the base config's loss, under a loss's name
            raise ConfigError(
                f"variant {text!r} sets nothing, so it would train the base config under the "
                f"label {label!r}: write {label!r} for loss {label}, or {label}:key=value"
            )
        try:
            overrides = parse_overrides(items)
        except ConfigError as exc:
            raise ConfigError(f"variant {label!r}: {exc}") from None
        return cls(label, tuple(overrides.items()))

    def config(self, base: DQNConfig, seed: int) -> DQNConfig:
        config = configured(base, self.overrides, seed, f"variant {self.label!r}")
        if self.label in LOSS_NAMES and config.loss != self.label:
            # The report names a variant by its label: "l2" that trained huber reads as l2's.
            raise ConfigError(
                f"variant {self.label!r} trains loss {config.loss}: a variant named after a loss "
                f"trains that loss; set loss: {self.label} in it, or give it another label"
            )
        return config


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside ``[...]`` and ``{...}`` (YAML lists and maps)."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


def read_variants_file(path: str | Path) -> list[Variant]:
    """Variants from a YAML file: a mapping of label to config overrides, in file order.

    ``{baseline: {}, double: {double_dqn: true}}``: a sweep kept as data, so that it can be
    rerun and reviewed. Overrides are validated later, with the base config they change.
    """
    path = Path(path)
    data = load_yaml(path, "variants file")  # a label given twice is refused there
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"variants file {path} must map each variant label to its overrides, "
            "e.g. 'double: {double_dqn: true}'"
        )
    if set(data) <= set(FIELDS) and not all(isinstance(v, dict | None) for v in data.values()):
        raise ConfigError(  # config keys with their values: a config, not a sweep's variants
            f"variants file {path} holds config keys ({', '.join(list(data)[:3])}"
            f"{', ...' if len(data) > 3 else ''}) with their values, as a config file does: give "
            "it to --config, and a mapping of label: {overrides} to --variants-file"
        )
    variants = []
    for label, overrides in data.items():
        if isinstance(label, bool | int | float) or label is None:
            # YAML reads 1e-3, on, off, ~ as a number, a bool or null.
            kind = "null" if label is None else "a bool" if isinstance(label, bool) else "a number"
            raise ConfigError(
                f"variants file {path}: the label {label!r} was read as {kind}, not a name: "
                "quote it ('1e-3': ...) or start it with a letter"
            )
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise ConfigError(
                f"variants file {path}: variant {label!r} must map config keys to values, "
                f"got {overrides!r}"
            )
        try:
            variants.append(Variant(label, tuple(overrides.items())))
        except ConfigError as exc:
            raise ConfigError(f"variants file {path}: {exc}") from None
    return variants


def run_comparison(
    base: DQNConfig,
    variants: Sequence[Variant | str],
    seeds: Sequence[int],
    out_dir: str | Path,
    workers: int | None = None,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
    runner: str = "population",
) -> list[dict]:
    """Train every (variant, seed) not already finished in ``out_dir``; return all rows. A
    variant is a ``Variant`` or its command-line text (``"huber"``, ``"wide:hidden_sizes=[512,
    512]"``), parsed as ``--variants`` is.

    ``runner="population"`` trains the runs that can share one program as populations
    (``dqn.population``), split into ``workers`` chunks so that every core has one; the rest,
    and every run with ``runner="process"``, train one process per run. ``backend="local"``
    runs the tasks in ``workers`` local processes; ``"ray"`` as Ray tasks, on a local Ray of
    ``workers`` CPUs or on the cluster at ``address`` (see ``dqn.ray_backend``). ``workers``
    defaults to the CPUs this process may use (``dqn.runtime.usable_cores``) divided by the
    runs' ``num_threads`` (1 by default), so that every thread has a core.
    """
    _check_not_in_a_workers_start()
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; valid runners: {', '.join(RUNNERS)}")
    _check_call(workers, progress, backend, address)
    variants, seeds = _as_variants(variants), _as_seeds(seeds)
    chosen = workers is not None
    out = Path(out_dir)
    if not variants or not seeds:  # the summary needs a run of each variant to report
        raise ConfigError(
            f"a study needs at least one variant and one seed, got {len(variants)} variant"
            f"{'s' * (len(variants) != 1)} and {len(seeds)} seed{'s' * (len(seeds) != 1)}"
        )
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"a study takes at most {MAX_SEEDS:,} seeds, got {len(seeds):,}")
    for what, items in (("variant label", [v.label for v in variants]), ("seed", list(seeds))):
        if repeated := [x for x, n in Counter(items).items() if n > 1]:
            raise ConfigError(f"{what} {repeated[0]!r} is given twice: each names its own runs")
    # A study's folder is its own (a rerun adds to it); a run's, population's or agent's files
    # in it would mix with the study's, and dqn-evaluate would no longer know what it holds.
    from dqn.agent_files import check_not_nested, folder_kind

    cure = "give the study a folder elsewhere (--out, out_dir)"
    check_not_nested(out, "study folder", cure)
    if (kind := folder_kind(out)) not in (None, "study"):
        raise ConfigError(
            f"{out} holds a run, population or agent (it is a {kind} folder), not a study: give "
            "the study its own folder (--out, out_dir)"
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file: give the study a folder (--out, out_dir)")
    if out.is_dir():
        foreign = sorted(
            p.name for p in out.iterdir() if p.name not in STUDY_ENTRIES and p.name[:1] != "."
        )
        if foreign:
            raise ConfigError(
                f"{out} holds files a study does not write ({few(foreign)}): give the study its "
                "own folder (--out, out_dir)"
            )
        # Results without the runs they came from (a study copied without runs/, a user's own
        # files of those names): nothing to check their settings against, and the new study
        # replaced them without a word.
        results = sorted(p.name for p in out.iterdir() if p.name in RESULT_FILES)
        if results and not (out / "runs").is_dir():
            raise ConfigError(
                f"{out} holds a study's results ({few(results)}) but not its runs/: give the "
                "study another folder (--out, out_dir), or move those files away"
            )
    # Every config is validated before anything is written: a bad variant leaves no folder.
    configs = {(v.label, seed): v.config(base, seed) for v in variants for seed in seeds}
    # So is every env the study trains on (a variant may name another): an unknown id or an
    # unsupported space is refused here rather than in a worker after the other runs trained.
    from dqn.envs import check_env, check_n_step

    overrides = {v.label: dict(v.overrides).keys() for v in variants}

    def as_variant(label: str, keys: set[str], check, *args):
        """``check(*args)``; its error names the variant where the variant sets one of ``keys``
        (else the value is the base config's, and the error every variant's)."""
        try:
            return check(*args)
        except DQNError as exc:
            if not keys & overrides[label]:
                raise
            raise type(exc)(f"variant {label!r}: {exc}") from None

    spaces, checked = {}, set()
    for (label, _), config in configs.items():
        env = (config.env_id, config.env_kwargs)
        if env not in checked:
            spaces[env] = as_variant(label, {"env_id", "env_kwargs"}, check_env, *env)
        if (*env, config.n_step) not in checked:  # the seeds share it
            as_variant(label, {"env_id", "env_kwargs", "n_step"}, check_n_step, config)
        checked |= {env, (*env, config.n_step)}
    # By default a core per thread: each worker runs num_threads TensorFlow threads.
    threads = max(c.num_threads for c in configs.values())
    per_cpu = "one per CPU" if threads == 1 else f"one per {threads} CPUs: num_threads={threads}"
    from dqn.runtime import usable_cores

    fits = max(1, usable_cores() // threads)
    if workers is None:
        workers = fits
    elif workers > fits and backend == "local" and len(variants) * len(seeds) > fits:
        import warnings

        # They share the cores: each runs slower, its train seconds are not the machine's,
        # and under populations the worker count also sets how the runs are chunked.
        warnings.warn(
            f"{workers} worker processes on {fits} ({per_cpu}): they share the cores, and "
            "their runs' train seconds count the sharing",
            UserWarning,
            stacklevel=2,
        )
    # The backend is checked here (Ray missing or unreachable: refused, nothing written).
    run_tasks = backend_runner(backend, workers, address)
    jobs: list[Job] = []
    rows: dict[str, dict] = {}
    changed: list[tuple[str, str]] = []  # (run, what differs) of runs made with other settings
    missing: list[str] = []  # runs whose result.json is there and their run/ folder is not
    for variant in variants:
        for seed in seeds:
            name = run_name(variant.label, seed)
            folder = out / "runs" / name
            cfg = configs[variant.label, seed].to_dict()
            # A rerun deleted and trained again what a link here leads to, or resumed it.
            if link := next((f for f in (folder, folder / STUDY_RUN) if f.is_symlink()), None):
                raise ConfigError(
                    f"{link} is a link: a study's runs are folders of its own; remove the "
                    "link, or give another output folder (--out)"
                )
            # A folder left by another study (other config, --set or variant overrides) is
            # neither reported as this one's nor overwritten.
            if run_is_missing(folder):
                missing.append(name)
            elif (difference := settings_difference(folder, cfg)) is not None:
                changed.append((name, difference))
            elif (row := read_result(folder, variant.label, seed)) is not None:
                rows[name] = row
            else:
                jobs.append(Job(name, cfg, variant.label, str(folder.resolve())))
    if missing:
        also = f" (and {few(missing[1:])})" if len(missing) > 1 else ""
        raise ConfigError(
            f"{out / 'runs' / missing[0]}{also}: its result.json is there but not its run "
            "(run/config.yaml; the run/ folder was deleted or moved): remove that run's folder "
            "to train it again, or give another output folder (--out)"
        )
    if changed:
        (name, difference), others = changed[0], len(changed) - 1
        also = f" (and {others} more run{'s' * (others != 1)})" if others else ""
        raise ConfigError(
            f"{out / 'runs' / name}{also}: trained with other settings ({difference}); "
            "give another output folder (--out), or the settings it was trained with"
        )
    # Two variants of one config (`a:loss=l2 b:loss=l2`, an override that repeats the base's
    # value) would train each seed's run twice. (After the rerun check: a label whose runs
    # were trained otherwise is named as such first.)
    if (repeat := first_repeat([configs[v.label, seeds[0]] for v in variants])) is not None:
        i, j = repeat
        raise ConfigError(
            f"variants {variants[i].label!r} and {variants[j].label!r} are the same config: "
            "their runs would be the same runs, trained twice; give one of them other overrides"
        )
    if address is None:  # this machine's memory holds the workers' tasks
        tasks, fitted = _tasks_that_fit(jobs, out, workers, runner, spaces, chosen)
        if fitted != workers:
            import warnings

            warnings.warn(
                f"{fitted} worker process{'es' * (fitted != 1)}, not {workers} ({per_cpu}): "
                f"{workers} at once would not fit in this machine's available memory",
                UserWarning,
                stacklevel=2,
            )
            workers, run_tasks = fitted, backend_runner(backend, fitted, address)
    else:
        tasks = make_tasks(jobs, out, workers, runner)
    # Held while it trains: a second dqn-compare into the same folder is refused, rather than
    # training the same runs at once into the same files.
    with hold_folders([out]):
        (out / "runs").mkdir(parents=True, exist_ok=True)
        write_plans(tasks)
        # Each run's own length: a variant may set its own total_env_steps.
        steps = {run_name(label, s): c.total_env_steps for (label, s), c in configs.items()}
        _train_tasks(tasks, run_tasks, rows, steps, progress)
        ordered = [rows[run_name(v.label, s)] for v in variants for s in seeds]
        write_results(ordered, out)
        # Each variant's own: a variant may name another env or set its own solve_return.
        write_report(
            ordered,
            out,
            {v.label: _threshold(configs[v.label, seeds[0]]) for v in variants},
            {v.label: configs[v.label, seeds[0]].env_id for v in variants},
        )
    _say_runs_left_out(out, {run_name(v.label, s) for v in variants for s in seeds})
    return ordered


def _as_variants(variants) -> list[Variant]:
    """Variants, or their command-line text (``"huber"``, ``"wide:hidden_sizes=[512,512]"``),
    parsed as dqn-compare parses ``--variants``."""
    if isinstance(variants, str | Variant) or not isinstance(variants, Iterable):
        raise ConfigError(f"variants is a list of variants, got {variants!r}")
    out = []
    for v in variants:
        if not isinstance(v, Variant | str):
            raise ConfigError(f"a variant is a Variant or a text such as 'huber', got {v!r}")
        out.append(v if isinstance(v, Variant) else Variant.parse(v))
    return out


def _check_not_in_a_workers_start() -> None:
    """ConfigError if this process is a study's worker importing the script that started the
    study (``spawn`` imports the main script in each worker): a call at the script's top level
    ran again there, and the worker died of it, which the study could only call a death."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # as spawn marks it
        raise ConfigError(
            "run_comparison ran again in a worker process of the study, which imports the "
            'script that started it: start a study under `if __name__ == "__main__":`'
        )


def _check_call(workers, progress, backend, address) -> None:
    """The arguments dqn-compare's own parser checks, checked for a caller in Python too: a
    ``progress="no"`` turned the bar on, an ``address`` with the local backend was dropped
    (and with it the memory check, kept for a cluster's machines), and ``workers=0`` ended in
    concurrent.futures' traceback."""
    check_flag(progress, "progress")
    if workers is not None:
        try:
            if isinstance(workers, bool) or operator.index(workers) < 1:
                raise TypeError
        except TypeError:
            raise ConfigError(
                "workers is a whole number > 0 (None: a core per num_threads), got "
                f"{shown(workers, 40)}"
            ) from None
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {shown(backend, 40)}; valid backends: {', '.join(BACKENDS)}"
        )
    if address is not None and backend != "ray":
        raise ConfigError("address is the Ray cluster to use: give it with backend='ray'")


def _as_seeds(seeds) -> list[int]:
    """The seeds as ints (numpy's too: ``operator.index`` takes any integer, no float)."""
    try:
        listed = list(seeds)  # (a generator is read once)
        if isinstance(seeds, str) or any(isinstance(s, bool) for s in listed):
            raise TypeError
        return [operator.index(s) for s in listed]
    except TypeError:
        raise ConfigError(
            f"seeds is a list of integers, such as range(30), got {seeds!r}"
        ) from None


def _say_runs_left_out(out: Path, names: set[str]) -> None:
    """Warn when ``out`` holds runs of an earlier command that this one's report leaves out
    (other seeds or variants): the summary is this command's study, and it replaced theirs."""
    others = sorted(
        p.name
        for p in (out / "runs").iterdir()
        if p.is_dir() and p.name not in names and not p.name.startswith(".")  # (a deletion's)
    )
    if others:
        import warnings

        warnings.warn(
            f"{out / 'runs'} also holds {len(others)} run{'s' * (len(others) != 1)} that this "
            f"command did not ask for ({few(others)}): the summary and figures leave "
            f"{'them' if len(others) != 1 else 'it'} out; give every variant and seed to report "
            "them together (finished runs are not trained again)",
            UserWarning,
            stacklevel=3,
        )


def _tasks_that_fit(jobs, out: Path, workers: int, runner: str, spaces, chosen: bool):
    """The study's tasks for ``workers`` worker processes, and that count, checked to fit in
    this machine's memory before anything is written: the heaviest ``workers`` tasks, each in a
    process of its own, must fit at once. A count the user chose is refused if they do not
    (ConfigError); the default, one per CPU (per num_threads CPUs), is lowered until they do,
    since a many-core machine with little memory per core would otherwise refuse the study it
    was asked for."""
    from dqn.members import check_memory, heaviest_at_once

    for count in [workers] if chosen else range(workers, 0, -1):
        tasks = make_tasks(jobs, out, count, runner)
        chunks = [[DQNConfig.from_dict(c) for c in task_configs(t)] for t in tasks]
        try:
            check_memory(heaviest_at_once(chunks, count, spaces), spaces, new_processes=True)
            return tasks, count
        except ConfigError:
            if chosen or count == 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _train_tasks(tasks, run_tasks, rows: dict, steps: dict[str, int], progress: bool) -> None:
    """Run the study's tasks, adding each finished run's row to ``rows`` (``steps``: each of the
    study's runs and its total_env_steps); WorkerError if a run crashed, StudyInterrupted if a
    signal stopped the study."""
    total = len(steps)
    to_train = total - len(rows)
    bar = None
    # env steps the bar has counted per task: from the checkpoints a resumed one starts from
    counted = {task[0]: task_steps_done(task) for task in tasks} if progress else {}
    if progress:
        bar = progress_bar(
            sum(steps.values()),
            initial=sum(steps[name] for name in rows) + sum(counted.values()),
            desc=_bar_label(to_train, tasks),
            unit_scale=True,
        )

    ended: set[str] = set()

    def on_steps(task_name: str, n: int) -> None:
        # A worker's queue may deliver a task's last steps after its result: the result has
        # counted them, and the bar went past its total.
        if task_name in ended:
            return
        counted[task_name] = counted.get(task_name, 0) + n
        bar.update(n)

    runs_of = {task[0]: task_runs(task) for task in tasks}
    failed = []  # (runs of the task, its TaskFailed): the others go on, then one error
    stopped: list[TaskInterrupted] = []  # tasks a signal stopped before they finished
    try:
        for task_name, result in run_tasks(tasks, on_steps if bar else None) if tasks else ():
            ended.add(task_name)
            if isinstance(result, TaskFailed | TaskInterrupted):
                if isinstance(result, TaskFailed):
                    failed.append((runs_of[task_name], result))
                else:
                    stopped.append(result)
                counted.pop(task_name, 0)
                if bar is not None:
                    bar.set_postfix(runs_done=len(rows), failed=len(failed), refresh=False)
                continue
            finished = result if isinstance(result, list) else [(task_name, result)]
            for name, row in finished:
                rows[name] = row
            if bar is not None:  # a task's remaining steps (stopped members never report theirs)
                bar.update(sum(steps[name] for name, _ in finished) - counted.pop(task_name, 0))
                bar.set_postfix(runs_done=len(rows), refresh=False)
    finally:
        if bar is not None:
            bar.close()
    if failed:  # nothing reports a study with runs missing; the finished ones are kept
        raise WorkerError(failure_message(failed))
    if stopped:
        import signal

        left = total - len(rows)
        raise StudyInterrupted(
            f"interrupted: {len(rows)} of {total} runs finished and are kept; the same command "
            f"trains the other {left}, each from its newest checkpoint",
            stopped[0].signum or signal.SIGINT,
        )


def _bar_label(runs: int, tasks: list) -> str:
    """What the bar is counting: "150 runs in 6 populations", "4 runs, a process each", "6
    runs: 4 in 4 populations, 2 in processes of their own" (a task of its own is one run);
    "every run finished" when there is nothing left to train (a rerun of a finished study
    read "0 runs, a process each")."""
    if not tasks:
        return "every run finished"
    populations = sum(name.startswith("population-") for name, _, _ in tasks)
    counted = f"{runs} run{'s' * (runs != 1)}"
    if populations == 0:
        return f"{counted}, a process each"
    in_populations = f"{populations} population{'s' * (populations != 1)}"
    alone = len(tasks) - populations
    if not alone:
        return f"{counted} in {in_populations}"
    return f"{counted}: {runs - alone} in {in_populations}, {alone} in processes of their own"


def _threshold(config: DQNConfig) -> float:
    from dqn.envs import config_env, solve_return

    env = config_env(config)
    threshold = solve_return(config, env)
    env.close()
    return float("inf") if threshold is None else threshold


def write_report(
    rows: Sequence[dict],
    out: Path,
    threshold: float | Mapping[str, float],
    envs: Mapping[str, str] | None = None,
) -> None:
    from dqn.report import plot_all, summary_markdown  # matplotlib: imported when used

    atomic_write_text(out / "summary.md", summary_markdown(rows, threshold, envs=envs))
    plot_all(out, rows)


def write_results(rows: Sequence[dict], out: Path) -> None:
    import csv
    import io

    atomic_write_text(out / "results.json", strict_json(list(rows), indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in RESULT_COLUMNS})
    atomic_write_text(out / "results.csv", buf.getvalue())


def seed_table(rows: Sequence[dict]) -> str:
    """A markdown table: one line per run (steps to first solve, final evaluation, seconds).
    A run's first solve is against its env's threshold, which summary.md's header gives."""
    lines = [
        "| variant | seed | env steps to first solve | final eval | train seconds |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        solved = r["first_solve_env_step"]
        final = r["final_eval_mean"]
        # A run the guard stopped before its first evaluation has none (NaN in results.csv).
        shown = "no evaluation" if final is None or math.isnan(final) else f"{final:.1f}"
        lines.append(
            f"| {r['variant']} | {r['seed']} | {solved if solved is not None else 'not reached'} "
            f"| {shown} | {r['train_seconds']:.1f} |"
        )
    return "\n".join(lines)
