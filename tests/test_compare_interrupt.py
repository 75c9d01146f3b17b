"""An interrupted study: Ctrl-C (SIGINT to the terminal's whole process group) or SIGTERM (to
dqn-compare alone) stops every worker with a checkpoint, records no cut-short run as finished,
says so in one line, and exits 128 + the signal. The same command then trains what is left,
each interrupted run or population chunk from its checkpoint, and every run's metrics.csv
comes out byte for byte as in a study that was never stopped.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from dqn.config import DQNConfig

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "hidden_sizes": "[32,32]",
    "total_env_steps": 6000,
    "learning_starts_env_steps": 500,
    "train_every_env_steps": 64,
    "gradient_steps_per_train": 16,
    "target_update_every_grad_steps": 32,
    "eval_every_env_steps": 1000,
    "eval_episodes": 3,
    "final_eval_episodes": 5,
    "checkpoint_every_env_steps": 500,
    "learner": "numpy",
}
VARIANTS = ("huber", "l2")
SEEDS = 2
RUNS = [f"{v}-seed{s}" for v in VARIANTS for s in range(SEEDS)]


def study_config(settings: dict = SETTINGS) -> DQNConfig:
    """configs/cartpole.yaml with ``settings``: the study's config, as its command gives it."""
    return DQNConfig.from_yaml(
        ROOT / "configs" / "cartpole.yaml", [f"{k}={v}" for k, v in settings.items()]
    )


def variant_jobs(base: DQNConfig, folder: Path, seeds, variant: str = "huber") -> list:
    """A study's jobs for the runs of ``seeds`` of ``variant`` (a loss: huber unless given),
    each in ``folder/<variant><seed>``."""
    from dqn.study_runs import Job

    config = base.replace(loss=variant)
    return [
        Job(
            f"{variant}-seed{s}",
            config.replace(seed=s).to_dict(),
            variant,
            str(folder / f"{variant}{s}"),
        )
        for s in seeds
    ]


def compare_command(out: Path, runner: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from dqn.cli import compare_main; sys.exit(compare_main())",
        "--config",
        str(ROOT / "configs" / "cartpole.yaml"),
        "--set",
        *(f"{k}={v}" for k, v in SETTINGS.items()),
        "--variants",
        *VARIANTS,
        "--seeds",
        str(SEEDS),
        "--out",
        str(out),
        "--workers",
        "2",
        "--runner",
        runner,
        "--no-progress",
    ]


def checkpointed(out: Path) -> bool:
    """True once some run of the study has written a checkpoint past its first one.

    The signal must find a run between that checkpoint (env step 1000) and its end: 5000 env
    steps leave room for a busy machine's delays (with 3000 steps, in a suite run that shared the
    cores with other tests, no run was left between a checkpoint and its end)."""
    return any(
        len(list((out / "runs" / name / "run" / "checkpoints").glob("step-*"))) >= 2
        for name in RUNS
    )


def last_env_step(run: Path) -> int:
    lines = (run / "run" / "metrics.csv").read_text().splitlines()
    return int(lines[-1].split(",")[0])


def stop_mid_study(out: Path, runner: str, sig: int, whole_group: bool):
    proc = subprocess.Popen(
        compare_command(out, runner),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    deadline = time.monotonic() + 240
    while not checkpointed(out):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    if whole_group:  # a terminal's Ctrl-C reaches dqn-compare and every worker
        os.killpg(proc.pid, sig)
    else:  # `kill PID`: dqn-compare alone, which must stop its workers itself
        proc.send_signal(sig)
    out_text, err = proc.communicate(timeout=120)
    return proc.returncode, out_text, err


def interrupted_runs(out: Path) -> dict[str, int]:
    """The runs a signal stopped after a checkpoint, with their config.yaml's mtime as the
    signal left it: a rerun must resume them, not train them afresh (which would write their
    config.yaml again)."""
    finished = [n for n in RUNS if (out / "runs" / n / "result.json").is_file()]
    written = {
        name: (out / "runs" / name / "run" / "config.yaml").stat().st_mtime_ns
        for name in RUNS
        if name not in finished and (out / "runs" / name / "run" / "checkpoints").is_dir()
    }
    assert written, (
        f"no run was interrupted after a checkpoint (finished: {finished}): resume not tested"
    )
    return written


@pytest.fixture(scope="module")
def process_study_stopped(tmp_path_factory):
    """A per-process study stopped by SIGTERM to dqn-compare alone, once for the two tests that
    rerun it (with its own runner, and as populations): each reruns a copy (mtimes kept)."""
    out = tmp_path_factory.mktemp("stopped") / "study"
    return out, stop_mid_study(out, "process", signal.SIGTERM, whole_group=False)


def stopped_study(request, out: Path, runner: str, sig: int, whole_group: bool):
    """(exit code, stdout, stderr) of a study stopped mid-way, its folder at ``out``."""
    if (runner, sig, whole_group) == ("process", signal.SIGTERM, False):
        shared, result = request.getfixturevalue("process_study_stopped")
        shutil.copytree(shared, out)
        return result
    return stop_mid_study(out, runner, sig, whole_group)


@pytest.mark.slow
@pytest.mark.parametrize(
    "runner, sig, whole_group",
    [("population", signal.SIGINT, True), ("process", signal.SIGTERM, False)],
)
def test_an_interrupted_study_keeps_only_finished_runs_and_resumes_exactly(
    request, tmp_path, runner, sig, whole_group
):
    out = tmp_path / "study"
    code, _, err = stopped_study(request, out, runner, sig, whole_group)
    assert code == 128 + sig, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted:" in err and "the same command trains the other" in err, err
    total = int(SETTINGS["total_env_steps"])
    finished = [n for n in RUNS if (out / "runs" / n / "result.json").is_file()]
    assert len(finished) < len(RUNS), "the study ended before the signal: nothing tested"
    assert f"{len(finished)} of {len(RUNS)} runs finished" in err
    for name in finished:  # a result.json is only ever a finished run's
        assert last_env_step(out / "runs" / name) == total
    assert not (out / "results.json").exists()
    written = interrupted_runs(out)

    done = subprocess.run(compare_command(out, runner), capture_output=True, text=True)
    tracebacks = [p.read_text() for p in out.rglob("error.txt")]
    assert done.returncode == 0, (done.stderr, tracebacks)
    rows = json.loads((out / "results.json").read_text())
    assert [f"{r['variant']}-seed{r['seed']}" for r in rows] == RUNS
    for name, mtime in written.items():
        assert (out / "runs" / name / "run" / "config.yaml").stat().st_mtime_ns == mtime, name

    # The same runs, never stopped, in this process: as one population (its members, like
    # runs, do not depend on each other: tests/test_population.py), or as single runs.
    from dqn.loop import train
    from dqn.population import Member, train_population

    base = study_config()
    pairs = [(v, s) for v in VARIANTS for s in range(SEEDS)]
    if runner == "population":
        members = [Member({"loss": v}, s, v) for v, s in pairs]
        whole = train_population(base, members, out_dir=tmp_path / "whole", progress=False)
        references = [member.run_dir for member in whole]
    else:
        references = [tmp_path / "whole" / name for name in RUNS]
        for (v, s), run_dir in zip(pairs, references):
            train(base.replace(loss=v, seed=s), run_dir=run_dir, progress=False)
    for name, reference in zip(RUNS, references):
        resumed = (out / "runs" / name / "run" / "metrics.csv").read_text()
        assert resumed == (reference / "metrics.csv").read_text(), name


@pytest.mark.slow
def test_runs_a_per_process_study_left_checkpointed_resume_when_rerun_as_populations(
    request, tmp_path
):
    """`--runner process` stopped, then the same study without it (populations, the default):
    the runs it left checkpointed used to go into a fresh population, which deleted them and
    trained them from zero. Each continues from its own checkpoint, as a single run."""
    from dqn.loop import train

    out = tmp_path / "study"
    code, _, err = stopped_study(request, out, "process", signal.SIGTERM, whole_group=False)
    assert code == 128 + signal.SIGTERM, err
    written = interrupted_runs(out)
    done = subprocess.run(compare_command(out, "population"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    base = study_config()
    for name, mtime in written.items():
        run = out / "runs" / name / "run"
        assert run.joinpath("config.yaml").stat().st_mtime_ns == mtime, name
        variant, seed = name.split("-seed")
        reference = tmp_path / "whole" / name
        train(base.replace(loss=variant, seed=int(seed)), run_dir=reference, progress=False)
        assert (run / "metrics.csv").read_text() == (reference / "metrics.csv").read_text(), name


def test_a_rerun_trains_each_chunk_a_stopped_study_left_as_it_was(tmp_path):
    # Two of five runs were a chunk when the study stopped, two others a chunk that took all its
    # steps (killed before their summaries); the fifth is chunked afresh. Regrouped with it, the
    # first two would start again instead of resuming, the next two instead of being finished.
    from dqn.population_files import STEP_FILE
    from dqn.study_runs import make_tasks, task_runs

    base = study_config()
    jobs = variant_jobs(base, tmp_path, range(5))

    def left_chunk(name: str, chunk: list, env_step: int) -> Path:
        folder = tmp_path / "populations" / name
        folder.mkdir(parents=True)
        members = [
            {"config": job.config, "run_dir": str(Path(job.folder) / "run")} for job in chunk
        ]
        (folder / "population.json").write_text(json.dumps({"members": members}))
        (folder / STEP_FILE).write_text(json.dumps({"env_step": env_step, "stopped": []}))
        return folder

    stopped = left_chunk("stopped", [jobs[3], jobs[1]], env_step=1000)
    ended = left_chunk("ended", [jobs[2], jobs[0]], env_step=int(SETTINGS["total_env_steps"]))
    tasks = make_tasks(jobs, tmp_path, workers=2, runner="population")
    assert task_runs(tasks[0]) == ["huber-seed2", "huber-seed0"]  # in its order
    assert tasks[0][2][1] == str(ended.resolve())
    assert task_runs(tasks[1]) == ["huber-seed3", "huber-seed1"]
    assert tasks[1][2][1] == str(stopped.resolve())
    assert [task_runs(task) for task in tasks[2:]] == [["huber-seed4"]]

    # Killed before its members' first common checkpoint (no step marker; one member may have
    # checkpointed alone), a chunk is still kept as it was, to start again whole: regrouped,
    # or its checkpointed member continued alone, each run would train in another population,
    # whose batched matmuls round differently, and end elsewhere than in a study never stopped.
    (ended / STEP_FILE).unlink()
    checkpoint = Path(jobs[2].folder) / "run" / "checkpoints" / "step-000001000"
    checkpoint.mkdir(parents=True)
    tasks = make_tasks(jobs, tmp_path, workers=2, runner="population")
    assert task_runs(tasks[0]) == ["huber-seed2", "huber-seed0"]
    assert tasks[0][2][1] == str(ended.resolve())


def test_every_new_chunk_gets_a_share_of_every_variant(tmp_path):
    # Runs are dealt to the chunks in turn: 2 variants x 3 seeds on 3 workers make 3 chunks,
    # each of one huber and one l2 run (not one chunk of huber runs only).
    from dqn.study_runs import make_tasks, task_runs

    jobs = [job for v in VARIANTS for job in variant_jobs(study_config(), tmp_path, range(3), v)]
    tasks = make_tasks(jobs, tmp_path, workers=3, runner="population")
    assert [task_runs(t) for t in tasks] == [
        ["huber-seed0", "l2-seed0"],
        ["huber-seed1", "l2-seed1"],
        ["huber-seed2", "l2-seed2"],
    ]


def test_runs_that_differ_in_a_key_members_share_are_never_chunked_together(tmp_path):
    # A CartPole and an Acrobot variant cannot share one program: each env's runs make chunks
    # of their own (one each per worker), never a chunk mixing the two.
    from dqn.study_runs import Job, make_tasks, task_configs

    base = study_config()
    jobs = [
        Job(
            f"{v}-seed{s}",
            base.replace(env_id=env, seed=s).to_dict(),
            v,
            str(tmp_path / v / f"{s}"),
        )
        for v, env in (("cart", "CartPole-v1"), ("acro", "Acrobot-v1"))
        for s in range(2)
    ]
    tasks = make_tasks(jobs, tmp_path, workers=1, runner="population")
    envs = [sorted({c["env_id"] for c in task_configs(t)}) for t in tasks]
    assert envs == [["CartPole-v1"], ["Acrobot-v1"]]


def test_a_run_checkpointed_outside_any_chunk_continues_in_a_process_of_its_own(tmp_path):
    # huber-seed1 was checkpointed by `--runner process` (no chunk holds it): a population rerun
    # resumes it alone; a fresh chunk would delete what it trained. The others are chunked.
    from dqn.study_runs import _run_worker, make_tasks, task_runs

    jobs = variant_jobs(study_config(), tmp_path, range(3))
    (Path(jobs[1].folder) / "run" / "checkpoints" / "step-000001000").mkdir(parents=True)
    tasks = make_tasks(jobs, tmp_path, workers=1, runner="population")
    assert [task_runs(t) for t in tasks] == [["huber-seed1"], ["huber-seed0", "huber-seed2"]]
    assert tasks[0][1] is _run_worker


def test_a_rerun_with_the_process_runner_keeps_a_started_chunk_whole_and_says_so(tmp_path):
    # A population study killed mid-chunk, rerun with --runner process: each member resumed
    # alone from the chunk's checkpoint, and came out as neither runner's run, without a word.
    from dqn.population_files import STEP_FILE
    from dqn.study_runs import make_tasks, task_runs

    jobs = variant_jobs(study_config(), tmp_path, range(3))
    folder = tmp_path / "populations" / "stopped"
    folder.mkdir(parents=True)
    members = [{"config": job.config, "run_dir": str(Path(job.folder) / "run")} for job in jobs[:2]]
    (folder / "population.json").write_text(json.dumps({"members": members}))
    (folder / STEP_FILE).write_text(json.dumps({"env_step": 1000, "stopped": []}))
    with pytest.warns(UserWarning, match="2 runs continue in the population they started in"):
        tasks = make_tasks(jobs, tmp_path, workers=2, runner="process")
    assert [task_runs(t) for t in tasks] == [["huber-seed0", "huber-seed1"], ["huber-seed2"]]
    assert tasks[0][2][1] == str(folder.resolve())
    # Planned but never started (no population.json): its runs take the runner asked for.
    (folder / "population.json").rename(folder / "plan.json")
    (folder / STEP_FILE).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tasks = make_tasks(jobs, tmp_path, workers=2, runner="process")
    assert [task_runs(t) for t in tasks] == [["huber-seed0"], ["huber-seed1"], ["huber-seed2"]]


def test_a_narrower_rerun_says_that_a_stopped_chunks_runs_continue_alone(tmp_path):
    # The chunk held huber-seed0 and huber-seed1, and a rerun asks for seed 0 alone: that run
    # continues from its own checkpoint in a process of its own (it cannot resume with the
    # chunk without training the run not asked for), which a rerun had done without a word.
    from dqn.population_files import STEP_FILE
    from dqn.study_runs import _run_worker, make_tasks, task_runs

    jobs = variant_jobs(study_config(), tmp_path, range(2))
    folder = tmp_path / "populations" / "stopped"
    folder.mkdir(parents=True)
    members = [{"config": job.config, "run_dir": str(Path(job.folder) / "run")} for job in jobs]
    (folder / "population.json").write_text(json.dumps({"members": members}))
    (folder / STEP_FILE).write_text(json.dumps({"env_step": 1000, "stopped": []}))
    for job in jobs:
        (Path(job.folder) / "run" / "checkpoints" / "step-000001000").mkdir(parents=True)
    with pytest.warns(UserWarning, match="1 run of a stopped population continues each in a"):
        tasks = make_tasks(jobs[:1], tmp_path, workers=1, runner="population")
    assert [task_runs(t) for t in tasks] == [["huber-seed0"]] and tasks[0][1] is _run_worker
    with pytest.warns(UserWarning, match="1 run of a stopped population continues each in a"):
        tasks = make_tasks(jobs[:1], tmp_path, workers=1, runner="process")
    assert [task_runs(t) for t in tasks] == [["huber-seed0"]]
    with warnings.catch_warnings():  # the whole chunk asked for: it resumes together, silently
        warnings.simplefilter("error")
        tasks = make_tasks(jobs, tmp_path, workers=1, runner="population")
    assert [task_runs(t) for t in tasks] == [["huber-seed0", "huber-seed1"]]


def test_a_chunk_stopped_before_it_started_is_trained_on_a_rerun_with_its_own_members(tmp_path):
    # 8 runs in 4 chunks of 2 (4 workers): the first finished, the others were cancelled
    # before they started. Their 6 runs were chunked afresh on a rerun (2 chunks of 3 on 2
    # workers), each trained in another population than in a study never stopped: the chunks'
    # members are written down when the study starts, and a rerun keeps them.
    from dqn.study_runs import make_tasks, task_runs, write_plans

    base = study_config()
    jobs = variant_jobs(base, tmp_path, range(8))
    planned = make_tasks(jobs, tmp_path, workers=4, runner="population")
    write_plans(planned)
    write_plans(planned)  # a rerun's: a chunk written down stays as it was
    finished = task_runs(planned[0])
    left = [job for job in jobs if job.name not in finished]
    again = make_tasks(left, tmp_path, workers=2, runner="population")
    assert sorted(map(task_runs, again)) == sorted(map(task_runs, planned[1:]))
    assert {t[2][1] for t in again} == {t[2][1] for t in planned[1:]}  # the same folders
    # A rerun with other settings before those chunks started: nothing there refuses them, and
    # the plans are of the new settings (a stale one was kept and never matched again).
    other = variant_jobs(base.replace(gamma=0.9), tmp_path, range(8))
    replanned = make_tasks(other, tmp_path, workers=4, runner="population")
    write_plans(replanned)
    left = [job for job in other if job.name not in task_runs(replanned[0])]
    assert len(make_tasks(left, tmp_path, workers=2, runner="population")) == 3


def test_a_plan_of_other_settings_does_not_decide_a_reruns_chunks(tmp_path):
    # Planned as 2 chunks of 2 with gamma 0.99, never started, rerun with gamma 0.9 on one
    # worker: the stale plans are of other runs, and the 4 runs make one fresh chunk.
    from dqn.study_runs import make_tasks, task_runs, write_plans

    base = study_config()
    old = make_tasks(variant_jobs(base, tmp_path, range(4)), tmp_path, 2, "population")
    write_plans(old)
    assert len(old) == 2
    other = variant_jobs(base.replace(gamma=0.9), tmp_path, range(4))
    tasks = make_tasks(other, tmp_path, workers=1, runner="population")
    assert [task_runs(t) for t in tasks] == [[f"huber-seed{s}" for s in range(4)]]


def test_a_chunk_is_the_same_population_only_with_the_same_run_folders(tmp_path):
    # The same settings for runs in other folders: another population, not this one to resume.
    from dqn.population_files import write_population
    from dqn.study_runs import STUDY_RUN, _same_population

    jobs = variant_jobs(study_config(), tmp_path, range(2))
    configs = [DQNConfig.from_dict(job.config) for job in jobs]
    members = [(job.label, c.seed) for job, c in zip(jobs, configs)]
    runs = [Path(job.folder) / STUDY_RUN for job in jobs]
    folder = tmp_path / "populations" / "chunk"
    folder.mkdir(parents=True)
    write_population(folder, members, runs, configs)
    assert _same_population(folder, configs, runs)
    moved = [tmp_path / "elsewhere" / f"r{k}" / STUDY_RUN for k in range(2)]
    assert not _same_population(folder, configs, moved)


def test_a_chunk_that_started_gets_no_plan_beside_its_member_list(tmp_path):
    # Its population.json says more than a plan (that its members trained together): a rerun
    # adds nothing to the chunk's folder.
    from dqn.population_files import write_population
    from dqn.study_runs import STUDY_RUN, make_tasks, write_plans

    jobs = variant_jobs(study_config(), tmp_path, range(2))
    (task,) = make_tasks(jobs, tmp_path, workers=1, runner="population")
    folder = Path(task[2][1])
    folder.mkdir(parents=True)
    configs = [DQNConfig.from_dict(job.config) for job in jobs]
    members = [(job.label, c.seed) for job, c in zip(jobs, configs)]
    write_population(folder, members, [Path(job.folder) / STUDY_RUN for job in jobs], configs)
    before = files(folder)
    write_plans([task])
    assert files(folder) == before


def test_a_chunk_that_cannot_resume_trains_again_whole_its_ended_member_too(tmp_path):
    # A member the guard stopped before the chunk's first common checkpoint has ended (its
    # summary says so) while the others have not: the chunk starts again whole, that member
    # trained again beside them, since a population of the others alone is another program.
    from dqn.population_files import STEP_FILE
    from dqn.study_runs import STUDY_RUN, Job, _population_worker

    settings = {**SETTINGS, "total_env_steps": 2000, "checkpoint_every_env_steps": 1000}
    base = study_config(settings)
    wild = base.replace(loss="l2", learning_rate=5.0, learning_rate_end=None)
    jobs = [
        Job("wild-seed0", wild.to_dict(), "wild", str(tmp_path / "wild")),
        Job("huber-seed1", base.replace(seed=1).to_dict(), "huber", str(tmp_path / "calm")),
    ]
    chunk = tmp_path / "populations" / "chunk"
    first = _population_worker(jobs, str(chunk))
    (_, stopped), (_, running) = first
    assert stopped["diverged_at_env_step"] < 1000 and running["diverged_at_env_step"] is None
    runs = [Path(job.folder) / STUDY_RUN for job in jobs]
    before = [(r / "metrics.csv").read_text() for r in runs]

    # As if killed before the first step every running member checkpointed.
    (chunk / STEP_FILE).unlink()
    shutil.rmtree(runs[1] / "checkpoints")
    (runs[1] / "summary.json").unlink()
    os.utime(runs[0] / "summary.json", ns=(0, 0))  # a file written again has another mtime
    again = _population_worker(jobs, str(chunk))
    assert (runs[0] / "summary.json").stat().st_mtime_ns != 0
    assert [(r / "metrics.csv").read_text() for r in runs] == before
    assert again[1][1]["final_eval_mean"] == running["final_eval_mean"]


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


SHORT = {**SETTINGS, "total_env_steps": 2000, "checkpoint_every_env_steps": 1000}


def test_a_rerun_keeps_a_run_whose_checkpoints_are_all_damaged_and_says_so(tmp_path):
    """A study's rerun deleted a run it could not resume and trained it from zero without a
    word, where `dqn-train --resume` of the same run refuses it: it fails in one line now,
    naming the damage and the cure, and every file of the run is kept."""
    from dqn.errors import CheckpointError
    from dqn.loop import train
    from dqn.study_runs import _train_or_resume

    config = study_config(SHORT)
    run = tmp_path / "runs" / "huber-seed0" / "run"
    stopped = train(config, run_dir=run, progress=False, on_eval=lambda record, agent: False)
    assert stopped.interrupted
    for replay in run.glob("checkpoints/step-*/replay.npz"):
        replay.write_bytes(replay.read_bytes()[:-100])  # truncated: its checksum fails
    (run / "NOTES.txt").write_text("the user's own")
    before = files(tmp_path)
    with pytest.raises(CheckpointError) as refused:
        _train_or_resume(config, run)
    said = str(refused.value)
    assert "\n" not in said and "replay.npz does not match its checksum" in said
    assert said.endswith(f"to train it again from its start, delete {run} and rerun the study")
    assert files(tmp_path) == before


@pytest.mark.parametrize("damage", ["garbled marker", "emptied marker", "member's checkpoints"])
def test_a_rerun_keeps_a_chunk_whose_step_marker_is_damaged_and_says_so(tmp_path, damage):
    """The same for a population chunk: a step marker that cannot be read was taken for no
    marker, and a member whose checkpoints are all damaged for one with none, and the chunk
    deleted and trained again from zero (its other member's good checkpoints too)."""
    from dqn.errors import CheckpointError
    from dqn.population_files import STEP_FILE
    from dqn.study_runs import STUDY_RUN, _population_worker

    base = study_config(SHORT)
    jobs = variant_jobs(base, tmp_path, range(2))
    chunk = tmp_path / "populations" / "chunk"
    _population_worker(jobs, str(chunk))
    for job in jobs:  # killed after its final checkpoint: a rerun finishes it from there
        (Path(job.folder) / STUDY_RUN / "summary.json").unlink()
        (Path(job.folder) / "result.json").unlink()
    marker = chunk / STEP_FILE
    if damage == "member's checkpoints":
        for replay in (Path(jobs[1].folder) / STUDY_RUN).glob("checkpoints/step-*/replay.npz"):
            replay.write_bytes(replay.read_bytes()[:-100])
        named = "replay.npz does not match its checksum"
    else:
        marker.write_text('{"env_step": "abc"' if damage == "garbled marker" else "")
        named = f"{STEP_FILE} is corrupt"
    before = files(tmp_path)
    with pytest.raises(CheckpointError) as refused:
        _population_worker(jobs, str(chunk))
    said = str(refused.value)
    assert "\n" not in said and named in said and str(chunk) in said
    assert "to train it again from its start, delete" in said
    assert files(tmp_path) == before


@pytest.mark.parametrize("lost", [False, True], ids=["kept", "a member's checkpoints gone"])
def test_a_rerun_trains_a_chunk_again_only_where_a_member_kept_no_checkpoint(
    tmp_path, monkeypatch, lost
):
    """A chunk whose checkpoints are all there but which this process cannot resume (files a
    newer Keras wrote, less memory than where it ran): a rerun deleted every member's
    checkpoints and trained it from zero without a word. It keeps them now and says why; only
    a running member with no checkpoint left (deleted) has the chunk start again."""
    from dqn.errors import CheckpointError
    from dqn.study_runs import STUDY_RUN, _population_worker

    jobs = variant_jobs(study_config(SHORT), tmp_path, range(2))
    chunk = tmp_path / "populations" / "chunk"
    _population_worker(jobs, str(chunk))
    runs = [Path(job.folder) / STUDY_RUN for job in jobs]
    for job, run in zip(jobs, runs):  # killed after its final checkpoint
        (run / "summary.json").unlink()
        (Path(job.folder) / "result.json").unlink()
    if lost:
        shutil.rmtree(runs[1] / "checkpoints")
    said = "population cannot be resumed in this memory: it needs 9 GB"

    def refused(out, **kwargs):
        raise CheckpointError(said)

    monkeypatch.setattr("dqn.population.resume_population", refused)
    before = files(tmp_path)
    if lost:
        rows = _population_worker(jobs, str(chunk))  # trained again, both members
        assert all((run / "summary.json").is_file() for run in runs) and len(rows) == 2
        return
    with pytest.raises(CheckpointError) as refusal:
        _population_worker(jobs, str(chunk))
    assert str(refusal.value).startswith(f"{said}; the study keeps its files as they are")
    assert files(tmp_path) == before


def test_a_run_a_rerun_deletes_is_gone_whole_or_kept_whole(tmp_path, monkeypatch):
    """A rerun deletes a run or a chunk it trains again from its start. Killed part-way through
    that deletion, it left half a run, whose damaged checkpoints the next rerun now keeps and
    refuses: the folder goes aside under a hidden name first, which the next deletion sweeps."""
    import shutil as real

    from dqn.study_runs import _holds_checkpoints, _remove_partial

    run = tmp_path / "runs" / "huber-seed0" / "run"
    (run / "checkpoints" / "step-000001000" / "agent").mkdir(parents=True)
    (run / "checkpoints" / "step-000001000" / "agent" / "agent.json").write_text("{}")
    assert _holds_checkpoints(run)
    stray = tmp_path / "other" / "checkpoints"
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("a stray file is no checkpoint")
    assert not _holds_checkpoints(stray.parent)
    # Checkpoints a resume set aside as damaged are still the run's: a rerun keeps them.
    aside = tmp_path / "aside" / "checkpoints" / "corrupt-step-000001000"
    aside.mkdir(parents=True)
    assert _holds_checkpoints(aside.parent.parent)
    rmtree = real.rmtree

    def killed(path, *args, **kwargs):
        raise KeyboardInterrupt  # the kill, before any file of the run went

    monkeypatch.setattr(real, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        _remove_partial(run)
    monkeypatch.setattr(real, "rmtree", rmtree)
    assert not run.exists() and not _holds_checkpoints(run)  # trained afresh by the next rerun
    [left] = [p.name for p in run.parent.iterdir()]
    assert left.startswith(".run.") and left.endswith(".trash")
    run.mkdir()
    _remove_partial(run)
    assert list(run.parent.iterdir()) == []


def test_a_rerun_refuses_a_population_whose_member_list_is_lost_and_changes_nothing(tmp_path):
    """Without its population.json a chunk's runs were taken for runs of no chunk and continued
    alone, each in a population of its own: not the study's runs, and no word said so."""
    from dqn.errors import CheckpointError
    from dqn.population_files import POPULATION_FILE, STEP_FILE
    from dqn.study_runs import make_tasks

    base = study_config()
    jobs = variant_jobs(base, tmp_path, range(2))
    chunk = tmp_path / "populations" / "chunk"
    chunk.mkdir(parents=True)
    (chunk / STEP_FILE).write_text(json.dumps({"env_step": 1000, "stopped": []}))
    for listed in ("{garbage", None):  # garbled, then lost beside the step marker
        if listed is None:
            (chunk / POPULATION_FILE).unlink()
        else:
            (chunk / POPULATION_FILE).write_text(listed)
        before = files(tmp_path)
        with pytest.raises(CheckpointError, match="cannot rerun the study: .*only that file"):
            make_tasks(jobs, tmp_path, workers=2, runner="population")
        assert files(tmp_path) == before
    (chunk / STEP_FILE).unlink()  # killed before it wrote either: its runs start afresh
    assert len(make_tasks(jobs, tmp_path, workers=2, runner="population")) == 2


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
def test_workers_of_a_killed_study_stop_with_a_checkpoint_and_leave(tmp_path):
    """SIGKILL (or the out-of-memory killer) ends dqn-compare with no chance to stop its
    workers: they stop themselves as a signal would stop them (each running run saves a
    checkpoint) and leave, rather than waiting forever with their memory; the same command
    then finishes the study."""
    out = tmp_path / "study"
    proc = subprocess.Popen(
        compare_command(out, "population"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not checkpointed(out):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint in 240 s"
        time.sleep(0.05)
    workers = children(proc.pid)
    assert workers, "no worker processes found"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while (alive := [w for w in workers if Path(f"/proc/{w}").exists()]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    for pid in alive:  # do not leave them to the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the study's process by 60 s"
    assert not (out / "results.json").exists()

    done = subprocess.run(compare_command(out, "population"), capture_output=True, text=True)
    assert done.returncode == 0, (done.stderr, [p.read_text() for p in out.rglob("error.txt")])
    total = int(SETTINGS["total_env_steps"])
    assert all(last_env_step(out / "runs" / name) == total for name in RUNS)


def _blocked_signals(queue) -> None:
    queue.put(sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))


def test_workers_start_with_the_stop_signals_held_and_none_is_lost():
    # A Ctrl-C to the group while a worker was still importing killed it half-started (its
    # handlers were not set yet): the study said its runs had crashed and exited 1. Workers now
    # start with SIGINT and SIGTERM blocked, inherited through spawn's exec, and release them
    # once their handlers are set; in the study's process a signal held meanwhile is delivered
    # when released.
    import multiprocessing as mp
    import threading

    from dqn.local_backend import _signals_held

    context = mp.get_context("spawn")
    queue = context.Queue()
    got = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        with _signals_held():
            child = context.Process(target=_blocked_signals, args=(queue,))
            child.start()
            # To this thread: the mask is a thread's, and a signal to the process goes to any
            # thread that does not block it (a thread pool of TensorFlow's, which an earlier
            # test in this worker process started, took it and the handler ran at once).
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            assert got == []  # held
        assert got == [signal.SIGTERM]  # delivered once released
        child.join(60)
        assert {int(signal.SIGINT), int(signal.SIGTERM)} <= set(queue.get(timeout=5))
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_worker_that_died_once_a_signal_stopped_the_study_counts_as_stopped():
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from dqn.local_backend import _result

    dead = Future()
    dead.set_exception(BrokenProcessPool("a child process terminated abruptly"))
    assert _result(dead, lambda why: f"crashed: {why}", stopping=True) is None
    assert _result(dead, lambda why: f"crashed: {why}").startswith("crashed: its worker")


# Tasks for dqn.local_backend.run_local's workers (module level: spawn pickles them by name).
def _signals_itself(n: int) -> str:
    from dqn.run_log import stop_requested

    if n == 0:
        os.kill(os.getpid(), signal.SIGTERM)  # `kill WORKER_PID`: this worker alone
    time.sleep(0.5)
    return "stopped early" if stop_requested() else "finished"


def _stops_the_study(n: int) -> str:
    if n == 0:
        os.kill(os.getppid(), signal.SIGTERM)  # `kill STUDY_PID` while this task runs
        # Longer than the study's wait of 0.5 s for a result: it cancels the tasks waiting
        # before this one ends and the pool takes the next (a race at 0.5 s).
        time.sleep(3)
    return f"ran {n}"


def _sleeps(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _reports_steps(name: str, times: int, seen: str) -> bool:
    from dqn.local_backend import progress_queue

    for _ in range(times):
        progress_queue().put((name, 250))
    deadline = time.monotonic() + 10
    while not Path(seen).exists() and time.monotonic() < deadline:  # the study saw them
        time.sleep(0.05)
    return Path(seen).exists()


def test_a_stop_a_worker_started_still_goes_through_on_stop():
    from dqn.local_backend import run_local

    jobs = [("a", 0), ("b", 1)]
    got = dict(run_local(_signals_itself, jobs, workers=1, on_stop=lambda sig, r: (sig, r)))
    # No signal reached the study's process (None), yet the study is stopped.
    assert got["a"] == (None, "stopped early")
    assert got["b"] in ((None, None), (None, "stopped early"))  # cancelled, or already queued


def test_a_task_not_started_when_the_study_is_stopped_never_runs():
    from dqn.local_backend import run_local

    # One worker: "a" runs, "b" may already sit in the pool's call queue, "c" waits its turn.
    jobs = [("a", 0), ("b", 1), ("c", 2)]
    got = dict(run_local(_stops_the_study, jobs, workers=1, on_stop=lambda sig, r: (sig, r)))
    assert got["a"] == (signal.SIGTERM, "ran 0")
    assert got["c"] == (signal.SIGTERM, None)


def test_a_caller_that_gives_up_on_the_results_ends_the_workers_at_once():
    import multiprocessing as mp

    from dqn.local_backend import run_local

    results = run_local(_sleeps, [("quick", 0.1), ("long", 20)], workers=2)
    assert next(results)[0] == "quick"
    results.close()  # an exception or a Ctrl-C in the caller's loop
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = mp.active_children()
    for process in left:  # not left to the rest of the suite
        process.kill()
    assert not left, "a worker outlived its study's generator by 5 s"


def test_a_running_task_reports_its_steps_and_every_one_arrives(tmp_path):
    from dqn.local_backend import run_local

    seen = tmp_path / "seen"
    got = []

    def on_steps(name, steps):
        got.append((name, steps))
        seen.touch()

    jobs = [("t", "t", 8, str(seen))]
    [(name, saw)] = run_local(_reports_steps, jobs, workers=1, on_steps=on_steps)
    assert saw is True  # the study had its steps while it ran, not only once it ended
    assert got == [("t", 250)] * 8


def test_a_rerun_trains_again_a_run_killed_before_its_first_checkpoint(tmp_path, monkeypatch):
    # Only config.yaml is left: nothing to resume and nothing to keep, so it starts afresh.
    import dqn.loop
    from dqn.study_runs import _train_or_resume

    config = study_config(SHORT)
    run = tmp_path / "runs" / "huber-seed0" / "run"
    run.mkdir(parents=True)
    config.to_yaml(run / "config.yaml")
    trained = []
    monkeypatch.setattr(dqn.loop, "train_study_run", lambda c, d, p: trained.append(d) or "trained")
    assert _train_or_resume(config, run) == "trained"
    assert trained == [run] and not run.exists()  # the partial folder went before training


def test_a_study_stopped_by_sigterm_carries_it_when_its_worker_saw_the_stop_itself():
    # The worker's own TaskInterrupted has no signal: the study's SIGTERM (exit 143) is kept,
    # where SIGINT (130) is only the default for a stop no one names.
    from dqn.compare import _train_tasks
    from dqn.errors import StudyInterrupted
    from dqn.study_runs import TaskInterrupted, _run_worker, _stopped

    tasks = [("l2-seed0", _run_worker, ({}, "l2", "/nonexistent"))]

    def run_tasks(tasks, on_steps):  # as the local backend does once SIGTERM stopped the study
        for name, _, _ in tasks:
            yield name, _stopped(signal.SIGTERM, TaskInterrupted())

    with pytest.raises(StudyInterrupted) as stopped:
        _train_tasks(tasks, run_tasks, {}, {"l2-seed0": 300}, progress=False)
    assert stopped.value.signum == signal.SIGTERM


def _warns(text: str) -> str:
    warnings.warn(text, UserWarning, stacklevel=1)
    warnings.warn(f"\x1b[33m{text}\x1b[0m", UserWarning, stacklevel=1)  # gymnasium's colours
    return text


def test_a_warning_every_worker_gives_is_printed_once_by_the_study(capfd):
    # Every worker of a CartPole-v0 study warned that the env is out of date, after the study
    # itself had: three copies of the line. The workers now pass their warnings to the study's
    # process, whose printer prints each once.
    from dqn.local_backend import run_local
    from dqn.terminal import warning_printer

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # not Python's once per place: the printer's once
        warnings.showwarning = warning_printer("dqn-x")
        _warns("old env")
        jobs = [("a", "old env"), ("b", "old env"), ("c", "new env"), ("d", "new env")]
        got = dict(run_local(_warns, jobs, workers=2))
    assert got == {"a": "old env", "b": "old env", "c": "new env", "d": "new env"}
    out, err = capfd.readouterr()
    assert out == ""
    assert err.splitlines() == ["dqn-x: warning: old env", "dqn-x: warning: new env"]


def test_a_worker_whose_study_is_gone_leaves_though_its_task_hangs():
    # A task stuck in its env (never reaching the step where it would stop) kept its worker
    # alive forever after the study was killed, holding its run's folder lock.
    code = (
        "import threading\n"
        "from dqn import local_backend\n"
        "local_backend.ORPHAN_GRACE_SECONDS = 0.5\n"
        "local_backend._IDLE = threading.Event()  # a task runs, and never returns\n"
        "local_backend._watch_study(-1, threading.Event())  # its study: not its parent\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, timeout=60)
    assert done.returncode == 1
