"""How a study's runs are run: each (variant, seed) in a process of its own, or the runs that
can share one program as population chunks (``dqn.population``); in local worker processes
(``dqn.local_backend``) or as Ray tasks (``dqn.ray_backend``). Every finished run leaves
``result.json`` beside its run folder, which is what makes a study resumable
(``dqn.compare``).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dqn.agent_files import CHECKPOINTS, POPULATION_FILE, STEP_FILE, STUDY_RUN
from dqn.config import DQNConfig, changed_keys, read_saved_config
from dqn.errors import ConfigError, few, first_line, shown
from dqn.io import atomic_write_text, hold_folders, nulls_as_nan, strict_json
from dqn.run_log import read_metrics
from dqn.run_state import ended_summary

# A chunk's members, written down when its study starts, before the chunk trains.
PLAN_FILE = "plan.json"


class Job(NamedTuple):
    """One run to do. A tuple, so that it pickles to a worker process or a Ray task as is."""

    name: str  # the run's name in the study, "<variant>-seed<k>"
    config: dict  # its DQNConfig as a dict
    label: str  # its variant's label
    folder: str  # its folder in the study (absolute); the run itself is in STUDY_RUN under it


# One task for a worker process or a Ray task: (name, worker function, its arguments). A task
# is one run (``_run_worker``, returns its row) or a population chunk (``_population_worker``,
# returns (name, row) per run).
Task = tuple[str, Callable, tuple]
RUNNERS = ("population", "process")
MAX_CHUNK = 25  # members per population chunk at most
ERROR_FILE = "error.txt"  # a failed task's traceback, in its run or population folder
# Where a run is written when no folder is given: a study always gives one, so a rerun with
# another output_dir is the same study.
NOT_SETTINGS = ("output_dir",)


class TaskInterrupted(NamedTuple):
    """What a task returns when the study was interrupted before it finished: no result.json is
    written, so a rerun trains its runs again, resuming each from its newest checkpoint."""

    signum: int | None = None  # the signal the study got, when the main process knows it


class TaskFailed(NamedTuple):
    """What a task returns instead of raising: its error in one line and its traceback file.
    The study goes on with its other tasks, then raises one WorkerError for all that failed."""

    error: str
    traceback_file: str | None


def settings_difference(run_folder: Path, config: Mapping) -> str | None:
    """How the config a study's run folder was trained with differs from ``config`` (a config
    dict), as ``"gamma: 0.99 there, 0.5 now"``; None if they are the same or if the folder holds
    no run yet (a run killed before it wrote its config.yaml starts again)."""
    recorded = Path(run_folder) / STUDY_RUN / "config.yaml"
    if not recorded.is_file():  # (a finished run without it: ``run_is_missing``)
        return None
    try:
        there = read_saved_config(recorded).to_dict()
    except ConfigError as exc:
        return f"its run/config.yaml cannot be read: {exc}"
    keys = changed_keys(there, config, NOT_SETTINGS)
    return "; ".join(f"{k}: {there.get(k)!r} there, {config[k]!r} now" for k in keys) or None


def run_is_missing(run_folder: Path) -> bool:
    """Whether a study's run entry holds its result.json but not its run (run/config.yaml): a
    run/ folder deleted or moved. Its result cannot be checked against the study's settings,
    nor its curves drawn: the study names it rather than reporting or training over it."""
    entry = Path(run_folder)
    return (entry / "result.json").is_file() and not (entry / STUDY_RUN / "config.yaml").is_file()


def summarize_run(history: Sequence[Mapping[str, float]], first_solve: int | None) -> dict:
    """The per-run numbers of results.csv from the metrics rows of one run."""
    if not history:  # stopped (diverged) before its first evaluation
        nan = float("nan")
        return {
            "first_solve_env_step": first_solve,
            "final_eval_mean": nan,
            "eval_auc": nan,
            "zero_grad_fraction_mean": nan,
            "over_bound_fraction_mean": nan,
            "q_abs_max": nan,
        }
    evals = np.array([row["eval_return_mean"] for row in history], float)
    zero = np.array([row["zero_grad_fraction"] for row in history], float)
    over = np.array([row["over_bound_fraction"] for row in history], float)
    qmax = np.array([row["q_abs_max"] for row in history], float)
    return {
        "first_solve_env_step": first_solve,
        "final_eval_mean": float(evals[-1]),
        # Area under the evaluation curve, as the mean of all the run's evaluations.
        "eval_auc": float(evals.mean()),
        "zero_grad_fraction_mean": _nanmean(zero),
        "over_bound_fraction_mean": _nanmean(over),
        "q_abs_max": float(np.nanmax(qmax)) if np.isfinite(qmax).any() else float("nan"),
    }


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _run_worker(
    config_dict: dict, label: str, run_dir: str, task_name: str = ""
) -> dict | TaskInterrupted:
    """Train one run in a worker process of either backend (one TF thread); write result.json,
    unless the study was interrupted (the run's checkpoint is kept for the rerun). In a local
    worker its env steps go to the study's bar as it takes them, under ``task_name``."""
    from dqn.local_backend import progress_queue
    from dqn.run_log import stop_requested
    from dqn.runtime import import_tensorflow_quietly

    if stop_requested():  # interrupted before this task started
        return TaskInterrupted()
    config = DQNConfig.from_dict(config_dict)
    run_path = Path(run_dir)
    (run_path / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's
    run = run_path / STUDY_RUN
    # A run that ended but has no result.json (its worker was killed in between) is read back.
    if ended_summary(run, config.total_env_steps) is None:
        import_tensorflow_quietly(config.num_threads)
        from dqn.errors import DivergenceError, TrainingInterrupted

        queue = progress_queue()  # None in a Ray worker
        report = (lambda n: queue.put((task_name, n))) if queue is not None else False
        try:
            _train_or_resume(config, run, report)  # a study passes no on_eval: it ends or raises
        except TrainingInterrupted:  # the study's stop: the run's checkpoint is saved
            return TaskInterrupted()
        except DivergenceError:
            # Divergence is an outcome of the loss under test, not a failure of the comparison:
            # the row keeps the evaluations made before the guard stopped the run, and where.
            pass
    with hold_folders([run]):  # read as a resume would: what a killed writer left goes
        row = _ended_row(config, label, run)
    atomic_write_text(run_path / "result.json", strict_json(row))
    return row


# A run's row (``_ended_row``): results.csv's columns, and the evaluation curve (results.json).
RESULT_COLUMNS = (
    "variant",
    "loss",
    "seed",
    "first_solve_env_step",
    "final_eval_mean",
    "eval_auc",
    "zero_grad_fraction_mean",
    "over_bound_fraction_mean",
    "q_abs_max",
    "diverged_at_env_step",
    "train_seconds",
)
ROW_KEYS = (*RESULT_COLUMNS, "curve")


# The columns a run can lack as a number (one stopped before its first evaluation, or before
# its first gradient step): NaN in a row, null in JSON, which has no NaN (a strict parser, as
# JavaScript's or jq's, refuses Python's bare NaN). The other nulls mean something else: never
# solved, not diverged.
NAN_COLUMNS = (
    "final_eval_mean",
    "eval_auc",
    "zero_grad_fraction_mean",
    "over_bound_fraction_mean",
    "q_abs_max",
)


def _number_or_none(value) -> bool:
    return value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool))


# What each key of a row holds (every other: a number or null), for a reader of a file that
# dqn did not necessarily write: a hand-edited or foreign one is one line, not a KeyError.
ROW_KINDS = {
    "variant": ("a name", lambda v: isinstance(v, str)),
    "loss": ("a name", lambda v: isinstance(v, str)),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "curve": ("a list", lambda v: isinstance(v, list)),
}


def check_result_rows(path: Path, rows, keys: Sequence[str] = ROW_KEYS) -> None:
    """ValueError naming ``path`` unless ``rows`` (read from it) is a list of runs, each
    holding ``keys`` with values of their kinds."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path} is not a list of runs, as dqn-compare writes")
    for i, row in enumerate(rows, 1):
        for key in keys:
            what, ok = ROW_KINDS.get(key, ("a number or null", _number_or_none))
            if key not in row:
                raise ValueError(
                    f"{path}: run {i} has no {key!r} (each run needs {', '.join(keys)})"
                )
            if not ok(row[key]):
                raise ValueError(f"{path}: run {i}'s {key!r} is {row[key]!r}, not {what}")


def read_result(folder: Path, label: str, seed: int) -> dict | None:
    """The row in a study run entry's result.json; None if there is none. One that cannot be
    read, or is not this run's row, is named in a warning and the run is read back from its
    folder (or trained on from its checkpoint) like a run that never wrote one, which writes
    the file again."""
    path = Path(folder) / "result.json"
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text())
        check_result_rows(path, [row])
        if (row["variant"], row["seed"]) == (label, seed):
            return nulls_as_nan(row, NAN_COLUMNS)
    except (OSError, ValueError):
        pass
    import warnings

    warnings.warn(
        f"{path} is not a readable result of run {label}-seed{seed}: the run is read back "
        "from its folder",
        UserWarning,
        stacklevel=3,
    )
    return None


def _ended_row(config: DQNConfig, label: str, run: Path) -> dict:
    """The row of results.json (and the run's result.json) of a run that has ended, read from
    its folder (summary.json, metrics.csv). Every row is made this way, whether the run was
    trained just now or ended before, so a rerun gives the same row."""
    summary = ended_summary(run, config.total_env_steps)
    if summary is None:  # the loops write the final summary before they return or raise
        raise RuntimeError(f"run {run} ended without a final summary.json")
    columns = read_metrics(run / "metrics.csv")
    history = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return {
        "variant": label,
        "loss": config.loss,
        "seed": config.seed,
        **summarize_run(history, summary["first_solve_env_step"]),
        "diverged_at_env_step": summary["env_steps"] if summary["diverged"] else None,
        "train_seconds": round(summary["train_seconds"], 2),
        # Plain numbers for JSON (metrics.csv is read as numpy floats).
        "curve": [[int(r["env_step"]), float(r["eval_return_mean"])] for r in history],
    }


def _train_or_resume(config: DQNConfig, run_dir: Path, progress=False):
    """Resume the run an interrupted or killed attempt left in ``run_dir`` from its newest good
    checkpoint (the study checked that it was made with ``config``); else train it afresh, over
    whatever partial folder there is (a run killed before its first checkpoint, or a Ray task
    retried after its node died). A run whose checkpoints are all damaged fails in one line, as
    its ``dqn-train --resume`` does, and keeps them: it is not deleted and trained again."""
    import warnings

    from dqn.errors import CheckpointError, CheckpointWarning
    from dqn.loop import resume, train_study_run

    if (run_dir / "config.yaml").is_file() or _holds_checkpoints(run_dir):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CheckpointWarning)  # a corrupt newer one: skipped
                return resume(run_dir, progress=progress)
        except CheckpointError as exc:
            if _holds_checkpoints(run_dir):
                raise CheckpointError(f"{exc}; {_retrain_advice(run_dir)}") from None
    _remove_partial(run_dir)
    return train_study_run(config, run_dir, progress)


def _holds_checkpoints(run_dir: Path) -> bool:
    """Whether a run folder holds a checkpoint, good, damaged or set aside as corrupt (a write
    killed half-way leaves only hidden leftovers): what a rerun must not delete."""
    from dqn.agent_files import list_checkpoints
    from dqn.checkpoint import SET_ASIDE

    if list_checkpoints(run_dir):
        return True
    folder = run_dir / CHECKPOINTS  # checkpoints a resume set aside (set_aside_one)
    return folder.is_dir() and any(
        p.is_dir() and p.name.startswith(f"{SET_ASIDE}step-") for p in folder.iterdir()
    )


def _lost_a_running_member(out: Path, run_dirs: list[Path]) -> bool:
    """Whether a member the step marker does not record as stopped holds no checkpoint, good,
    damaged or set aside (its folder or its checkpoints deleted). False for a marker that
    cannot be read: what it says is unknown."""
    from dqn.errors import CheckpointError
    from dqn.population_files import read_step_marker

    try:
        _, stopped = read_step_marker(out)
    except CheckpointError:
        return False
    return any(not _holds_checkpoints(run) for i, run in enumerate(run_dirs) if i not in stopped)


def _retrain_advice(*folders: Path) -> str:
    return (
        "the study keeps its files as they are: to train it again from its start, delete "
        f"{few([str(f) for f in folders], 3)} and rerun the study"
    )


def _population_worker(
    jobs: list, folder: str, task_name: str = ""
) -> list[tuple[str, dict]] | TaskInterrupted:
    """Train a chunk of runs as one population (``dqn.population``) in one worker process;
    write each run's result.json, unless the study was interrupted (the chunk's checkpoint is
    kept for the rerun). A chunk interrupted or killed half-way resumes from its step marker."""
    from dqn.run_log import stop_requested

    if stop_requested():
        return TaskInterrupted()
    configs = [DQNConfig.from_dict(job.config) for job in jobs]
    out = Path(folder)
    run_dirs = [Path(job.folder) / STUDY_RUN for job in jobs]
    (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's
    # Runs that ended but have no result.json (the worker was killed in between) are read back.
    unended = [ended_summary(d, c.total_env_steps) is None for c, d in zip(configs, run_dirs)]
    if any(unended) and not _train_chunk(jobs, configs, out, run_dirs, unended, task_name):
        return TaskInterrupted()
    with hold_folders([out, *run_dirs]):  # read as a resume would: what a killed writer left goes
        rows = [_ended_row(c, job.label, d) for c, job, d in zip(configs, jobs, run_dirs)]
    for job, row in zip(jobs, rows):
        atomic_write_text(Path(job.folder) / "result.json", strict_json(row))
    return [(job.name, row) for job, row in zip(jobs, rows)]


def _train_chunk(
    jobs: list,
    configs: list[DQNConfig],
    out: Path,
    run_dirs: list[Path],
    unended: list[bool],
    task_name: str,
) -> bool:
    """Train (or resume) the chunk's population; False if the study was interrupted. A chunk
    that ``out`` already holds but that cannot resume (killed before its members' first common
    checkpoint) starts again whole, the same members in the same order: a member's numbers
    depend on the population that shares its batched matmuls, so a run trained again in another
    population would not be the run of a study never stopped. A new chunk holds only the
    ``unended`` runs: one that ended is kept, not trained again."""
    from dqn.local_backend import progress_queue
    from dqn.runtime import import_tensorflow_quietly

    import_tensorflow_quietly(configs[0].num_threads)
    from dqn.errors import CheckpointError, TrainingInterrupted
    from dqn.population import MEMBER_OWNS, Member, resume_population, train_study_population

    queue = progress_queue()  # None in a Ray worker
    report = (lambda n: queue.put((task_name, n))) if queue is not None else False
    try:
        same = _same_population(out, configs, run_dirs)
        # Checkpointed (one that took all its steps is finished from its final checkpoint). A
        # running member whose checkpoints are gone (or its folder) leaves nothing to keep: the
        # chunk starts again. Any other refusal fails the chunk in one line, its files kept, as
        # `dqn-train --resume` fails such a run: a marker that cannot be read, damaged
        # checkpoints, and as much those this process cannot read (a newer Keras's files, a
        # machine with less memory), which a rerun had deleted to train the chunk from zero.
        if same and (out / STEP_FILE).exists():
            advice = _retrain_advice(out, *(Path(job.folder) for job in jobs))
            try:
                resume_population(out, progress=report)
                return True
            except CheckpointError as exc:
                if not _lost_a_running_member(out, run_dirs):
                    raise CheckpointError(f"{exc}; {advice}") from None
        todo = list(range(len(jobs))) if same else [i for i, train in enumerate(unended) if train]
        _remove_partial(out)
        for i in todo:
            _remove_partial(Path(jobs[i].folder))
        members = [
            Member(
                {k: v for k, v in configs[i].to_dict().items() if k not in MEMBER_OWNS},
                configs[i].seed,
                jobs[i].label,
            )
            for i in todo
        ]
        train_study_population(configs[todo[0]], members, out, [run_dirs[i] for i in todo], report)
    except TrainingInterrupted:  # the study's stop: every running member's checkpoint is saved
        return False
    return True  # ended, the members the guard stopped included: a study passes no on_eval


def _same_population(out: Path, configs: list[DQNConfig], run_dirs: list[Path]) -> bool:
    """True if ``out`` holds the population of exactly these runs, in this order."""
    from dqn.errors import CheckpointError
    from dqn.population_files import read_population

    try:
        saved, dirs = read_population(out)
    except (CheckpointError, OSError):
        return False
    same_dirs = [d.resolve() for d in dirs] == [d.resolve() for d in run_dirs]
    return saved == configs and same_dirs


def make_tasks(jobs: list[Job], out: Path, workers: int, runner: str) -> list[Task]:
    """The runs as tasks: populations of what can share a program, else one task per run."""
    import hashlib

    from dqn.members import SHARED_KEYS, population_mismatch

    tasks: list[Task] = []
    groups: dict[tuple, list[Job]] = {}
    asked = jobs
    if runner == "process" and (out / "populations").is_dir():
        # A chunk that started training (its population.json) is kept whole under this runner
        # too: its members split into processes resumed each from the chunk's checkpoint and
        # came out as neither runner's runs.
        poolable = [j for j in jobs if not population_mismatch([DQNConfig.from_dict(j.config)])]
        started = [
            (chunk, folder)
            for chunk, folder in _resumable_chunks(out, poolable)
            if (folder / POPULATION_FILE).exists()
        ]
        if started:
            import warnings

            kept, chunks = sum(len(chunk) for chunk, _ in started), len(started)
            warnings.warn(
                f"{kept} run{'s continue' if kept != 1 else ' continues'} in the "
                f"population{'s' * (chunks != 1)} "
                "they started in (a member's numbers depend on its population); --runner "
                "process applies to the others",
                UserWarning,
                stacklevel=3,
            )
        for chunk, folder in started:
            tasks.append(_population_task(chunk, folder))
        jobs = [job for job in jobs if not any(job in chunk for chunk, _ in started)]
        _warn_if_split(out, [job for job in jobs if _checkpointed_unended(job)], asked)
    for job in jobs:
        alone = runner == "process" or population_mismatch([DQNConfig.from_dict(job.config)])
        if alone:
            tasks.append(_run_task(job))
        else:
            groups.setdefault(tuple(repr(job.config[k]) for k in SHARED_KEYS), []).append(job)
    for group in groups.values():
        # Chunks an interrupted or killed study left half-trained are resumed as they were
        # (their runs would otherwise be regrouped with the study's other unfinished runs, and
        # start again); the other runs are chunked afresh.
        for chunk, folder in _resumable_chunks(out, group):
            tasks.append(_population_task(chunk, folder))
            group = [job for job in group if job not in chunk]
        # A run checkpointed outside such a chunk (by `--runner process`, or by `dqn-train
        # --resume` of a chunk's run) continues from its own checkpoint, in a process of its own
        # as that runner would: a fresh chunk would delete what it trained.
        checkpointed = [job for job in group if _checkpointed_unended(job)]
        _warn_if_split(out, checkpointed, asked)
        tasks += [_run_task(job) for job in checkpointed]
        group = [job for job in group if job not in checkpointed]
        if not group:
            continue
        # At least one chunk per worker, and no chunk above MAX_CHUNK members: more members
        # share the dispatch of one call, but past a few dozen [256, 256] networks the stacked
        # state outgrows the caches and each member's step gets slower (docs/populations.md).
        n = min(len(group), max(workers, -(-len(group) // MAX_CHUNK)))
        for i in range(n):
            # Interleaved: every chunk gets a share of every variant (one that diverges early,
            # and so leaves its chunk lighter, does not all land in one chunk).
            chunk = group[i::n]
            names = "\n".join(job.name for job in chunk)
            key = hashlib.sha1(names.encode()).hexdigest()[:12]
            tasks.append(_population_task(chunk, out / "populations" / key))
    return tasks


def _warn_if_split(out: Path, checkpointed: list[Job], jobs: list[Job]) -> None:
    """One warning if some of ``checkpointed`` started in a population that also holds runs
    this study does not ask for (a rerun with fewer seeds or variants): those continue each in
    a process of its own, not as the study that was stopped would have trained them."""
    from dqn.errors import CheckpointError
    from dqn.population_files import read_population

    if not checkpointed or not (out / "populations").is_dir():
        return
    asked = {(Path(job.folder) / STUDY_RUN).resolve() for job in jobs}
    mine = {(Path(job.folder) / STUDY_RUN).resolve() for job in checkpointed}
    split = set()
    for folder in (out / "populations").glob("*"):
        try:
            _, dirs = read_population(folder)
        except (CheckpointError, OSError):
            continue
        members = {d.resolve() for d in dirs}
        if members & mine and not members <= asked:
            split |= members & mine
    if split:
        import warnings

        k = len(split)
        warnings.warn(
            f"{k} run{'s' * (k != 1)} of a stopped population continue{'s' * (k == 1)} each in "
            "a process of its own, from its own checkpoint: the population also holds runs this "
            "command does not ask for (a member's numbers depend on its population; rerun with "
            "the seeds and variants it started with to continue them together)",
            UserWarning,
            stacklevel=4,
        )


def write_plans(tasks: list[Task]) -> None:
    """Write down each new chunk's members (its PLAN_FILE) before any chunk trains: a study
    stopped before a chunk started (a cancelled task) reruns that chunk with the same members.
    Its runs were chunked afresh on the rerun, with other runs, and a member's numbers depend on
    the population that shares its batched matmuls. (A chunk that started has its
    population.json, which says more: that its members trained together.)"""
    from dqn.population_files import write_population

    for _, worker, args in tasks:
        if worker is not _population_worker:
            continue
        jobs, folder = args[0], Path(args[1])
        # A plan there already is rewritten: the same, or one of a rerun with other settings
        # before the chunk ever started (its runs hold nothing to refuse the new settings by).
        if (folder / POPULATION_FILE).exists():
            continue
        configs = [DQNConfig.from_dict(job.config) for job in jobs]
        folder.mkdir(parents=True, exist_ok=True)
        members = [(job.label, c.seed) for job, c in zip(jobs, configs)]
        runs = [Path(job.folder) / STUDY_RUN for job in jobs]
        write_population(folder, members, runs, configs, PLAN_FILE)


def _run_task(job: Job) -> Task:
    return (job.name, _run_worker, (job.config, job.label, job.folder, job.name))


def _checkpointed_unended(job: Job) -> bool:
    """True if the job's run holds a checkpoint and has not ended."""
    from dqn.agent_files import list_checkpoints

    run = Path(job.folder) / STUDY_RUN
    total = DQNConfig.from_dict(job.config).total_env_steps
    return bool(list_checkpoints(run)) and ended_summary(run, total) is None


def _population_task(chunk: list[Job], folder: Path) -> Task:
    name = f"population-{folder.name}"  # also the name it reports its progress under
    return (name, _population_worker, (chunk, str(folder.resolve()), name))


def _resumable_chunks(out: Path, group: list[Job]) -> list[tuple[list[Job], Path]]:
    """The chunks of ``group`` that ``out/populations`` holds (each with its runs in the order
    it was trained in), with their folders: unfinished ones resume, those killed after their
    final checkpoint are finished from it, and those killed before their members' first common
    checkpoint start again whole (``_train_chunk``), never regrouped."""
    from dqn.errors import CheckpointError
    from dqn.population_files import read_population

    by_dir = {(Path(job.folder) / STUDY_RUN).resolve(): job for job in group}
    chunks: list[tuple[list[Job], Path]] = []
    folders = (out / "populations").glob("*") if (out / "populations").is_dir() else ()
    for folder in sorted(folders):
        try:
            saved, dirs = read_population(folder)
        except (CheckpointError, OSError) as exc:
            # A damaged list, or a lost one beside a step marker, says nothing of which runs
            # trained together, and such a run continued alone would not be the study's run.
            if (folder / POPULATION_FILE).exists() or (folder / STEP_FILE).exists():
                raise CheckpointError(
                    f"cannot rerun the study: {first_line(exc)}, and only that file says which "
                    f"runs train together: restore it, or delete {folder} and the study's "
                    "unfinished runs (those in runs/ without a result.json) to train them again"
                ) from None
            # Never started: its plan, if the study wrote it down (else nothing trained there,
            # and its runs are chunked afresh).
            try:
                saved, dirs = read_population(folder, PLAN_FILE)
            except (CheckpointError, OSError):
                continue
        jobs = [by_dir.get(d.resolve()) for d in dirs]
        if None in jobs or any(job in chunk for chunk, _ in chunks for job in jobs):
            continue
        # Its runs are these jobs' by construction; their settings must be these too (the
        # list read once: _same_population would read it again).
        if saved != [DQNConfig.from_dict(job.config) for job in jobs]:
            continue
        if not _trained_alone(folder, [Path(job.folder) / STUDY_RUN for job in jobs]):
            chunks.append((jobs, folder))
    return chunks


def _trained_alone(folder: Path, runs: list[Path]) -> bool:
    """True if a run of the chunk in ``folder`` was trained on past the chunk's checkpoint by
    another command (``dqn-train --resume`` of it): the chunk then has no step to resume
    together, and its runs continue alone, each from its own newest checkpoint (as a fresh
    chunk, which would delete what that command trained, must not). A chunk killed before its
    first step marker has no such step: False."""
    from dqn.errors import CheckpointError
    from dqn.population_files import read_step_marker, trained_past

    try:
        marker, stopped = read_step_marker(folder)
    except (CheckpointError, OSError):
        return False
    return any(
        trained_past(run, marker) is not None for i, run in enumerate(runs) if i not in stopped
    )


def task_configs(task: Task) -> list[dict]:
    """The config dicts of the runs one task trains: a population chunk's members, or one run."""
    _, fn, args = task
    return [job.config for job in args[0]] if fn is _population_worker else [args[0]]


def task_steps_done(task: Task) -> int:
    """The env steps a task's runs trained before (a stopped study's chunk resumes from its step
    marker, a run from its newest checkpoint), read from their files: where a rerun's progress
    bar starts, so that it does not sit at 0 while the checkpoints load, with an ETA of the
    whole study. An estimate (a member the guard stopped counts to the marker): a finished
    task's bar is set to its runs' whole length."""
    from dqn.agent_files import checkpoint_step, list_checkpoints
    from dqn.errors import CheckpointError
    from dqn.population_files import read_step_marker

    _, fn, args = task
    try:
        if fn is _population_worker:  # no marker (a chunk not yet checkpointed): 0, below
            return read_step_marker(Path(args[1]))[0] * len(args[0])
        newest = list_checkpoints(Path(args[2]) / STUDY_RUN)
        return checkpoint_step(newest[0]) if newest else 0
    except (CheckpointError, OSError, ValueError):
        return 0


def task_runs(task: Task) -> list[str]:
    """The names of the runs one task trains."""
    name, fn, args = task
    return [job.name for job in args[0]] if fn is _population_worker else [name]


def failure_message(failed: Sequence[tuple[list[str], TaskFailed]]) -> str:
    """One line for the tasks that failed: their runs, the first error, where its traceback is."""
    runs = [run for names, _ in failed for run in names]
    listed = few(runs, 4)
    first = failed[0][1]
    where = f"traceback in {first.traceback_file}" if first.traceback_file else "no traceback file"
    others = len({f.traceback_file for _, f in failed} - {first.traceback_file})
    also = f"; {others} other task(s) too, each with its {ERROR_FILE}" if others else ""
    return (
        f"{len(runs)} run{'s' * (len(runs) != 1)} failed ({listed}): {first.error} "
        f"({where}{also}); the finished runs are kept: a rerun trains only the others"
    )


BACKENDS = ("local", "ray")  # where a study's tasks run


def backend_runner(backend: str, workers: int, address: str | None) -> Callable[..., Iterator]:
    """The one part a backend owns: run these tasks, yield (task name, result) as each ends."""
    if backend == "local":
        return lambda tasks, on_steps: run_local(tasks, workers, on_steps)
    if backend == "ray":
        import os

        from dqn.ray_backend import check_reachable, require_ray, run_ray

        require_ray()
        # RAY_ADDRESS too: ray.init retries an address that does not answer for minutes.
        if address is not None:
            check_reachable(address)
        elif (where := os.environ.get("RAY_ADDRESS")) is not None:
            check_reachable(where, source="RAY_ADDRESS")

        def crashed(why: str) -> TaskFailed:  # _call returns the task's own errors: this is Ray's
            return TaskFailed(f"its Ray worker died: {why}", None)

        return lambda tasks, on_steps: run_ray(
            _call,
            [(name, fn, args) for name, fn, args in tasks],
            workers,
            address,
            crashed,
            _stopped,
        )
    raise ConfigError(
        f"unknown backend {shown(backend, 40)}; valid backends: {', '.join(BACKENDS)}"
    )


def _stopped(signum: int | None, result: object) -> object:
    """What a task that ended after the study was stopped counts as (either backend): its
    result if it finished, else a TaskInterrupted carrying the study's signal."""
    finished = result is not None and not isinstance(result, TaskInterrupted)
    return result if finished else TaskInterrupted(signum)


def _call(fn: Callable, args: tuple) -> object:
    """``fn(*args)`` in a worker process (local or Ray): its result, or, if it raises, a
    TaskFailed whose traceback is written to the task's folder (the worker's own output may be
    on another node, or scrolled away under the progress bar)."""
    try:
        return fn(*args)
    except Exception as exc:
        import traceback

        name = type(exc).__name__
        error = f"{name}: {first_line(exc)}" if str(exc).strip() else name
        folder = {_population_worker: 1, _run_worker: 2}.get(fn)
        if folder is None:
            return TaskFailed(error, None)
        path = Path(args[folder]) / ERROR_FILE
        try:
            atomic_write_text(path, traceback.format_exc())
        except OSError:
            return TaskFailed(error, None)
        return TaskFailed(error, str(path))


def run_local(
    tasks: Sequence[Task], workers: int, on_steps: Callable[[str, int], None] | None = None
) -> Iterator[tuple[str, object]]:
    """The study's tasks on the local backend (``dqn.local_backend``): yield (name, result) as
    each finishes. A worker process that died is a TaskFailed; once the study is stopped by a
    signal, a task that did not finish is a TaskInterrupted."""
    from dqn.local_backend import run_local as run_in_processes

    def crashed(why: str) -> TaskFailed:
        return TaskFailed(why, None)

    jobs = [(name, fn, args) for name, fn, args in tasks]
    return run_in_processes(_call, jobs, workers, on_steps, crashed, _stopped)


def _remove_partial(path: Path) -> None:
    """Delete a folder a rerun trains again, all or nothing (``dqn.io.remove_whole``): a rerun
    killed while deleting left half a run, whose damaged checkpoints the next rerun would keep
    and refuse."""
    from dqn.io import remove_whole

    remove_whole(path)


__all__ = [
    "ERROR_FILE",
    "RUNNERS",
    "Job",
    "Task",
    "TaskFailed",
    "backend_runner",
    "failure_message",
    "make_tasks",
    "run_local",
    "settings_difference",
    "summarize_run",
    "task_configs",
    "task_runs",
    "write_plans",
]
