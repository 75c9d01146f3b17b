"""Bad input to a study (``dqn-compare``, ``run_comparison``, ``train_population``): a one-line
error naming the problem, exit code 2 from the CLI, and nothing written.

- a rerun on an output folder whose runs were trained with other settings is refused (the
  same settings still skip finished runs and train the rest);
- a label that would name a folder outside the output folder (or a nested one) is refused;
- a variant or member that sets ``seed``, or a config key that is not a string, is refused;
- ``hidden_sizes=[8,8]`` inside ``--variants`` is one override, not two;
- a run that crashes in its worker is reported in one line naming the runs and the file that
  holds the traceback; the study's other runs are kept.

Studies here train in this process (the backend is replaced by a loop over the tasks), with
the numpy learner and a few hundred env steps, so no worker process starts except where the
worker processes are what is tested.
"""

import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from dqn import compare, study_runs
from dqn.cli import compare_main
from dqn.compare import Variant, read_variants_file, run_comparison
from dqn.config import DQNConfig
from dqn.errors import ConfigError, DQNError, UnsupportedSpaceError, WorkerError
from dqn.population import Member, train_population
from dqn.study_runs import ERROR_FILE, TaskFailed, run_local, task_runs

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(
    total_env_steps=300,
    learning_starts_env_steps=100,
    train_every_env_steps=10,
    gradient_steps_per_train=2,
    hidden_sizes=[8],
    batch_size=16,
    buffer_size=500,
    eval_every_env_steps=150,
    eval_episodes=1,
    final_eval_episodes=1,
    checkpoint_every_env_steps=150,
    target_update_every_grad_steps=10,
    learner="numpy",
)
BASE = DQNConfig(**TINY)
TWO = [Variant.parse("l2"), Variant.parse("huber")]


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def in_process(monkeypatch):
    """Run a study's tasks one after another in this process; record the runs each trained."""
    trained: list[str] = []

    def backend(name, workers, address):
        def run(tasks, on_steps):
            for task_name, fn, args in tasks:
                result = fn(*args)
                finished = result if isinstance(result, list) else [(task_name, result)]
                trained.extend(name for name, _ in finished)
                yield task_name, result

        return run

    monkeypatch.setattr(compare, "backend_runner", backend)
    return trained


def refused_cli(args, capsys, workdir: Path) -> str:
    """``dqn-compare args``: exit 2, one stderr line, no file under ``workdir`` changed."""
    before = tree(workdir)
    code = compare_main([str(a) for a in [*args, "--no-progress", "--workers", "1"]])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert tree(workdir) == before
    return lines[0]


def tiny_yaml(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in TINY.items()))
    return path


# ---------------------------------------------------------------------- finished runs reused
@pytest.fixture
def study(tmp_path, in_process):
    """A finished study of l2 and huber on seeds 0 and 1, trained with BASE."""
    out = tmp_path / "study"
    rows = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner="process")
    assert sorted(in_process) == ["huber-seed0", "huber-seed1", "l2-seed0", "l2-seed1"]
    in_process.clear()
    return out, rows


def test_the_same_study_again_skips_its_finished_runs_and_trains_the_rest(study, in_process):
    out, rows = study
    run = out / "runs" / "huber-seed1"
    (run / "result.json").unlink()  # killed before its first checkpoint: no result, no summary
    (run / "run" / "summary.json").unlink()
    shutil.rmtree(run / "run" / "checkpoints")
    # Killed after its final checkpoint, before its summary.json: finished from the checkpoint.
    ended = out / "runs" / "huber-seed0"
    (ended / "result.json").unlink()
    (ended / "run" / "summary.json").unlink()
    written = {r: (r / "run" / "config.yaml").stat().st_mtime_ns for r in (run, ended)}
    again = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner="process")
    assert in_process == ["huber-seed0", "huber-seed1"]
    assert (run / "run" / "config.yaml").stat().st_mtime_ns != written[run]  # trained again
    assert (ended / "run" / "config.yaml").stat().st_mtime_ns == written[ended]  # not trained
    assert [r["final_eval_mean"] for r in again] == [r["final_eval_mean"] for r in rows]


def test_a_narrower_rerun_says_which_runs_its_summary_leaves_out(study, in_process):
    out, rows = study
    with pytest.warns(
        UserWarning,
        match="holds 2 runs that this command did not ask for "
        "\\(huber-seed0, l2-seed0\\): the summary and figures leave them out",
    ):
        again = run_comparison(BASE, TWO, [1], out, workers=1, progress=False)
    assert in_process == [] and again == [rows[1], rows[3]]
    assert "| 1 |" in (out / "summary.md").read_text()  # this command's study: one seed
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole study again: nothing left out, no warning
        assert run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False) == rows


def test_a_rerun_ignores_the_hidden_files_of_a_study_folder(study, in_process):
    # .DS_Store (Finder's) is no foreign file, nor a hidden folder in runs/ (a deletion's
    # leftover) a run this command left out.
    out, rows = study
    (out / ".DS_Store").write_text("")
    (out / "runs" / ".huber-seed0.deleting").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False) == rows
    assert in_process == []


def test_exactly_the_most_seeds_a_study_takes_is_accepted(tmp_path, in_process):
    # MAX_SEEDS seeds pass the count check: the next check (a file, not a folder) is what refuses.
    (tmp_path / "afile").write_text("mine\n")
    with pytest.raises(ConfigError, match="afile is a file: give the study a folder"):
        run_comparison(
            BASE, TWO, range(compare.MAX_SEEDS), tmp_path / "afile", workers=1, progress=False
        )


def test_a_runs_saved_config_given_as_the_variants_file_is_refused_as_a_config(tmp_path):
    # A config.yaml of a run holds every config key: still a config, not a sweep.
    path = tmp_path / "config.yaml"
    BASE.to_yaml(path)
    with pytest.raises(ConfigError, match=r"holds config keys \(.*, \.\.\.\) with their values"):
        read_variants_file(path)
    # Three keys are all named, with no "..." after them.
    path.write_text("gamma: 0.9\nloss: l2\nbatch_size: 8\n")
    with pytest.raises(ConfigError, match=r"holds config keys \(gamma, loss, batch_size\) with"):
        read_variants_file(path)


@pytest.mark.parametrize("runner", ["process", "population"])
def test_a_run_that_ended_but_lost_its_result_is_read_back_not_trained_again(
    tmp_path, in_process, runner
):
    """A worker killed between a run's end and its result.json: the run's folder says it ended
    (summary.json, metrics.csv), and its final checkpoint has nothing left to resume, so the
    rerun reads its row back instead of training it from scratch, under the run folder's hold:
    the killed worker's hold file and half-written temporary go (they stayed)."""
    out = tmp_path / "study"
    rows = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner=runner)
    lost = [out / "runs" / name for name in ("l2-seed1", "huber-seed0")]
    leftovers = []
    for run in lost:
        (run / "result.json").unlink()
        leftovers += [run / "run" / ".lock", run / "run" / ".summary.json.k1ll3d_x.tmp"]
    for path in leftovers:
        path.write_text("")
    before = tree(out)
    again = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner=runner)
    assert again == rows  # wall times too: read from the runs' summaries
    after = tree(out)
    trained = {k for k in after if before.get(k) != after[k] and "/run/" in k}
    assert trained == set(), trained  # no run folder was touched (config.yaml, metrics.csv...)
    assert all((run / "result.json").is_file() for run in lost)
    assert [path for path in leftovers if path.exists()] == []


def test_a_seed_written_as_true_is_not_read_as_seed_1():
    # JSON's true is a Python bool, an int: a hand-edited seed of true passed for run 1's seed.
    from dqn.study_runs import ROW_KEYS, check_result_rows

    row = {k: None for k in ROW_KEYS} | {"variant": "l2", "loss": "l2", "seed": 1, "curve": []}
    check_result_rows(Path("results.json"), [row])
    with pytest.raises(ValueError, match=r"results.json: run 1's 'seed' is True, not an integer"):
        check_result_rows(Path("results.json"), [{**row, "seed": True}])


def test_a_result_that_cannot_be_read_is_named_and_read_back_from_its_run(study, in_process):
    """A result.json garbled, emptied or of another run is no row: it was a traceback (and a
    half-written report); the run is read back from its folder, as one that lost its result."""
    out, rows = study
    runs = out / "runs"
    (runs / "l2-seed0" / "result.json").write_text("{bad")
    (runs / "l2-seed1" / "result.json").write_text("{}")
    other = next(r for r in rows if (r["variant"], r["seed"]) == ("huber", 1))
    (runs / "huber-seed0" / "result.json").write_text(json.dumps(other))  # another run's row
    before = tree(out)
    with pytest.warns(UserWarning, match="is not a readable result of run") as said:
        again = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False)
    named = sorted(str(w.message).split("/")[-2] for w in said)
    assert named == ["huber-seed0", "l2-seed0", "l2-seed1"] == sorted(in_process)
    assert again == rows
    after = tree(out)
    assert {k for k in after if before.get(k) != after[k] and "/run/" in k} == set()  # read back
    by_run = {(r["variant"], r["seed"]): r for r in rows}
    assert json.loads((runs / "l2-seed1" / "result.json").read_text()) == by_run["l2", 1]


def test_a_study_is_not_written_among_files_that_are_not_a_studys(tmp_path, in_process):
    (tmp_path / "afile").write_text("mine\n")
    with pytest.raises(ConfigError, match="afile is a file: give the study a folder"):
        run_comparison(BASE, TWO, [0], tmp_path / "afile", workers=1, progress=False)
    for name, make in (
        ("notes", lambda p: (p / "notes.txt").write_text("mine\n")),
        ("checkpoints", lambda p: (p / "step-000000600").mkdir()),
    ):
        folder = tmp_path / name
        folder.mkdir()
        make(folder)
        before = tree(folder)
        with pytest.raises(ConfigError, match="holds files a study does not write") as err:
            run_comparison(BASE, TWO, [0], folder, workers=1, progress=False)
        assert "give the study its own folder" in str(err.value)
        assert tree(folder) == before and in_process == []
    # Results without their runs/ (a study copied without them, as docs/compare is; a user's
    # own files of those names) were replaced by the new study's without a word.
    folder = tmp_path / "results-only"
    folder.mkdir()
    (folder / "results.csv").write_text("variant,seed\nl2,0\n")
    (folder / "summary.md").write_text("mine\n")
    before = tree(folder)
    with pytest.raises(ConfigError, match=r"holds a study's results \(results.csv, summary.md\)"):
        run_comparison(BASE, TWO, [0], folder, workers=1, progress=False)
    assert tree(folder) == before and in_process == []
    with pytest.raises(ConfigError, match="at most 10,000 seeds, got 10,001"):
        run_comparison(BASE, TWO, range(10_001), tmp_path / "new", workers=1, progress=False)


@pytest.mark.parametrize("runner", ["process", "population"])
def test_a_run_killed_before_its_summary_is_finished_from_its_final_checkpoint(
    tmp_path, in_process, runner
):
    """A worker killed between a run's final checkpoint and its summary.json: the rerun writes
    the summary from that checkpoint (its final evaluation is in it) and trains no step."""
    out = tmp_path / "study"
    rows = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner=runner)
    for run in (out / "runs").iterdir():  # one chunk of four with populations: all lost
        (run / "result.json").unlink()
    for name in ("l2-seed1", "huber-seed0"):
        (out / "runs" / name / "run" / "summary.json").unlink()
    checkpoints = {k: v for k, v in tree(out).items() if "/checkpoints/" in k}
    again = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner=runner)
    assert {k: v for k, v in tree(out).items() if "/checkpoints/" in k} == checkpoints
    assert again == rows  # train_seconds too: the final checkpoint's, whichever runner


def test_a_run_that_ended_is_not_trained_again_with_runs_that_never_started(tmp_path, in_process):
    """Killed while one chunk wrote its result.json files and before the other chunk started:
    the rerun groups the ended run that lacks one with the two that never started, and trains
    only those two."""
    from dqn.population_files import read_population

    out = tmp_path / "study"
    rows = run_comparison(BASE, TWO, [0, 1], out, workers=2, progress=False)
    chunks = {
        folder: sorted(d.parent.name for d in read_population(folder)[1])
        for folder in (out / "populations").iterdir()
    }
    assert sorted(chunks.values()) == [["huber-seed0", "l2-seed0"], ["huber-seed1", "l2-seed1"]]
    (out / "runs" / "huber-seed0" / "result.json").unlink()
    for folder, names in chunks.items():
        if names == ["huber-seed1", "l2-seed1"]:
            shutil.rmtree(folder)
            for name in names:
                shutil.rmtree(out / "runs" / name)
    ended = {k: v for k, v in tree(out).items() if k.startswith("runs/huber-seed0/run/")}
    in_process.clear()
    again = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False)
    assert sorted(in_process) == ["huber-seed0", "huber-seed1", "l2-seed1"]  # one chunk
    assert {k: v for k, v in tree(out).items() if k.startswith("runs/huber-seed0/run/")} == ended
    for first, second in zip(rows, again):  # the two trained again took their own wall time
        assert second.pop("train_seconds") == pytest.approx(first.pop("train_seconds"), abs=0.5)
        assert second == first


def test_a_chunk_whose_checkpoints_were_lost_is_trained_afresh(tmp_path, in_process):
    """No step at which every member has a checkpoint (one member's were deleted): the chunk
    starts again, as a single run with no good checkpoint does, instead of failing."""
    out = tmp_path / "study"
    rows = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False)
    for run in (out / "runs").iterdir():
        (run / "result.json").unlink()
    run = out / "runs" / "huber-seed1" / "run"
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints")
    in_process.clear()
    again = run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False)
    assert sorted(in_process) == ["huber-seed0", "huber-seed1", "l2-seed0", "l2-seed1"]
    assert (run / "checkpoints").is_dir()
    assert [r["curve"] for r in again] == [r["curve"] for r in rows]


def test_a_chunk_whose_run_was_trained_on_alone_continues_each_run_from_its_own_checkpoint(
    tmp_path, in_process
):
    """A chunk stopped at step 150, one of whose runs was then trained on past it by
    ``dqn-train --resume`` (its checkpoints: only the newer 300): the chunk cannot resume
    together, and training it afresh would delete that run's work (the rerun used to be
    refused for that). Each run continues alone from its own newest checkpoint instead."""
    from dqn.population_files import STEP_FILE

    out = tmp_path / "study"
    run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False)
    (chunk,) = (out / "populations").iterdir()
    (chunk / STEP_FILE).write_text(json.dumps({"env_step": 150, "stopped": []}))
    for entry in (out / "runs").iterdir():
        (entry / "result.json").unlink()
        (entry / "run" / "summary.json").unlink()
    shutil.rmtree(out / "runs" / "huber-seed1" / "run" / "checkpoints" / "step-000000150")
    runs = sorted(p.name for p in (out / "runs").iterdir())
    mtimes = {n: (out / "runs" / n / "run" / "config.yaml").stat().st_mtime_ns for n in runs}
    in_process.clear()
    code = compare_main(
        ["--config", str(tiny_yaml(tmp_path)), "--variants", "l2", "huber"]
        + ["--seeds", "2", "--out", str(out), "--no-progress", "--workers", "1"]
    )
    assert code == 0 and sorted(in_process) == runs
    for name in runs:  # resumed, not trained afresh (which writes config.yaml again)
        run = out / "runs" / name / "run"
        assert run.joinpath("config.yaml").stat().st_mtime_ns == mtimes[name], name
        summary = json.loads(run.joinpath("summary.json").read_text())
        assert summary["env_steps"] == 300
        assert "population_members" not in summary  # ended as a single run, not in the chunk
    kept = out / "runs" / "huber-seed1" / "run" / "checkpoints"
    assert [p.name for p in kept.iterdir()] == ["step-000000300"]


def test_a_trained_row_takes_its_seconds_from_the_summary_as_a_row_read_back_does(
    tmp_path, monkeypatch
):
    """Rounding once, not twice: summary.json keeps 3 decimals and a row 2, so a row made from
    the wall time itself (0.1149 -> 0.11) would differ from the same run's row read back from
    its summary (0.115 -> 0.12)."""
    import dataclasses

    from dqn import study_runs

    train = study_runs._train_or_resume

    def near_a_boundary(config, run_dir, progress=False):
        result = train(config, run_dir, progress)
        summary = {**result.summary, "train_seconds": 0.115}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return dataclasses.replace(result, train_seconds=0.1149, summary=summary)

    monkeypatch.setattr(study_runs, "_train_or_resume", near_a_boundary)
    entry = tmp_path / "l2-seed0"
    trained = study_runs._run_worker(BASE.replace(loss="l2").to_dict(), "l2", str(entry))
    (entry / "result.json").unlink()
    read_back = study_runs._run_worker(BASE.replace(loss="l2").to_dict(), "l2", str(entry))
    assert trained["train_seconds"] == read_back["train_seconds"] == 0.12
    assert trained == read_back


def test_a_run_in_its_own_process_reports_its_steps_as_it_takes_them(tmp_path, monkeypatch):
    # With --runner process the study's bar sat at 0, with no ETA, until a run ended: a run
    # reported nothing on the worker's queue, where a population reports as it goes.
    from dqn import local_backend

    put = []
    monkeypatch.setattr(local_backend, "progress_queue", lambda: SimpleNamespace(put=put.append))
    entry = tmp_path / "l2-seed0"
    study_runs._run_worker(BASE.replace(loss="l2").to_dict(), "l2", str(entry), "l2-seed0")
    assert {name for name, _ in put} == {"l2-seed0"}
    steps = [n for _, n in put]
    assert len(steps) >= 2 and min(steps) > 0 and sum(steps) == BASE.total_env_steps, steps
    assert (entry / "result.json").is_file()


@pytest.mark.parametrize(
    "change, keys",
    [
        (dict(base=BASE.replace(gamma=0.5, loss_bound=3.0)), ["gamma", "loss_bound"]),
        (dict(base=BASE.replace(total_env_steps=400)), ["total_env_steps"]),
        (
            dict(variants=[Variant("l2", (("loss", "l2"), ("double_dqn", True))), TWO[1]]),
            ["double_dqn"],
        ),
    ],
    ids=["--set", "another config", "another variant under the same label"],
)
def test_a_rerun_with_other_settings_is_refused_before_anything_is_written(
    study, in_process, change, keys
):
    out, _ = study
    before = tree(out)
    args = dict(base=BASE, variants=TWO) | change
    with pytest.raises(ConfigError) as refused:
        run_comparison(args["base"], args["variants"], [0, 1], out, workers=1, progress=False)
    message = str(refused.value)
    assert "\n" not in message and "trained with other settings" in message
    assert "l2-seed0" in message and "--out" in message
    assert all(f"{key}:" in message for key in keys), message
    assert in_process == [] and tree(out) == before


def test_an_unfinished_run_of_other_settings_is_refused_too_and_kept(study, in_process):
    # Its folder would otherwise be wiped and trained again with the new settings.
    out, _ = study
    (out / "runs" / "l2-seed1" / "result.json").unlink()
    before = tree(out)
    with pytest.raises(ConfigError, match=r"l2-seed1: trained with other settings \(gamma: "):
        run_comparison(BASE.replace(gamma=0.5), [TWO[0]], [1], out, workers=1, progress=False)
    assert in_process == [] and tree(out) == before


def test_a_finished_run_whose_run_folder_is_gone_is_named_as_such_and_kept(study, in_process):
    # Its result.json kept, its run/ deleted: it was refused as "trained with other settings",
    # whose two cures (another --out, the settings it was trained with) do not help.
    import shutil

    from dqn.agent_files import STUDY_RUN

    out, _ = study
    shutil.rmtree(out / "runs" / "l2-seed1" / STUDY_RUN)
    before = tree(out)
    with pytest.raises(ConfigError) as refused:
        run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False)
    message = str(refused.value)
    assert "\n" not in message and "other settings" not in message
    assert message.startswith(f"{out / 'runs' / 'l2-seed1'}: its result.json is there but not")
    assert "remove that run's folder to train it again" in message
    assert in_process == [] and tree(out) == before


@pytest.mark.parametrize("linked", ["huber-seed1", "huber-seed1/run"])
@pytest.mark.parametrize("runner", ["population", "process"])
def test_a_run_folder_that_is_a_link_is_refused_and_what_it_leads_to_kept(
    study, in_process, runner, linked
):
    # Its target was taken as the run's folder: a rerun deleted what was there and trained a
    # run into it, wherever the link led (or resumed the run it led to).
    out, _ = study
    elsewhere = out.parent / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "sub" / "kept.txt").write_text("kept")
    shutil.rmtree(out / "runs" / linked)
    (out / "runs" / linked).symlink_to(elsewhere, target_is_directory=True)
    before = tree(out.parent)
    with pytest.raises(ConfigError) as refused:
        run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner=runner)
    message = str(refused.value)
    assert message.startswith(f"{out / 'runs' / linked} is a link: a study's runs are")
    assert "\n" not in message and in_process == [] and tree(out.parent) == before


def test_the_command_line_refuses_a_rerun_with_another_set(tmp_path, in_process, capsys):
    config, out = tiny_yaml(tmp_path), tmp_path / "out"
    args = ["--config", config, "--variants", "l2", "huber", "--seeds", "1", "--out", out]
    assert compare_main([str(a) for a in [*args, "--no-progress", "--workers", "1"]]) == 0
    capsys.readouterr()
    line = refused_cli([*args, "--set", "gamma=0.5", "loss_bound=3"], capsys, tmp_path)
    assert "runs/l2-seed0 (and 1 more run): trained with other settings" in line
    assert "gamma: 0.99 there, 0.5 now; loss_bound: 1.0 there, 3.0 now" in line


def test_env_sets_every_variants_env_id_and_set_env_id_with_it_is_refused(
    tmp_path, in_process, capsys
):
    config, out = tiny_yaml(tmp_path), tmp_path / "out"
    args = ["--config", config, "--variants", "l2", "--seeds", "1", "--out", out]
    assert compare_main([*map(str, args), "--env", "Acrobot-v1", "--no-progress"]) == 0
    assert "env_id: Acrobot-v1" in (out / "runs" / "l2-seed0" / "run" / "config.yaml").read_text()
    capsys.readouterr()
    twice = [*args, "--env", "Acrobot-v1", "--set", "env_id=CartPole-v1"]
    line = refused_cli(twice, capsys, tmp_path)
    assert line == "dqn-compare: error: --env and --set env_id=... both set 'env_id': give it once"


def test_env_with_a_variant_that_names_its_own_env_is_refused(tmp_path, in_process, capsys):
    # --env is "for every variant": a variant's own env_id overrode it without a word.
    config = tiny_yaml(tmp_path)
    args = ["--config", config, "--variants", "cp", "ac:env_id=Acrobot-v1", "--seeds", "1"]
    line = refused_cli(
        [*args, "--out", tmp_path / "out", "--env", "MountainCar-v0"], capsys, tmp_path
    )
    assert line == (
        "dqn-compare: error: --env MountainCar-v0 is every variant's env, and variant 'ac' sets "
        "env_id: give the env in the variants, or --env without them"
    )
    assert in_process == []


def test_env_with_a_variant_that_sets_its_own_env_kwargs_is_refused(tmp_path, in_process, capsys):
    # A variant's env_kwargs are keywords of the env it was written for, not of --env's.
    variants = tmp_path / "variants.yaml"
    variants.write_text("short: {env_kwargs: {max_episode_steps: 50}}\n")
    args = ["--config", tiny_yaml(tmp_path), "--variants-file", variants, "--seeds", "1"]
    line = refused_cli([*args, "--out", tmp_path / "out", "--env", "Acrobot-v1"], capsys, tmp_path)
    assert line == (
        "dqn-compare: error: --env Acrobot-v1 is every variant's env, and variant 'short' sets "
        "env_kwargs: give the env in the variants, or --env without them"
    )
    assert in_process == []


def test_more_workers_than_cores_is_said(tmp_path, in_process, monkeypatch):
    # --workers 5 on 2 cores ran without a word: slower runs whose train seconds count it.
    from dqn import runtime

    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    with pytest.warns(UserWarning, match=r"2 worker processes on 1 \(one per CPU\): they share"):
        run_comparison(BASE, TWO, [0], tmp_path / "out", workers=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_comparison(BASE, TWO, [0], tmp_path / "out", workers=1, progress=False)
        # Its 2 runs on 2 cores: the extra workers have nothing to run, nothing shares a core.
        monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
        run_comparison(BASE, TWO, [0], tmp_path / "out", workers=5, progress=False)


def test_a_label_or_seed_given_twice_is_refused(tmp_path, in_process):
    # Both would train the same run folder, at the same time.
    with pytest.raises(ConfigError, match="variant label 'l2' is given twice"):
        run_comparison(BASE, [TWO[0], TWO[0]], [0], tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="seed 3 is given twice"):
        run_comparison(BASE, TWO, [3, 3], tmp_path / "out", progress=False)
    assert in_process == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments, message",
    [
        # The bar showed: any true value turned it on.
        ({"progress": "no"}, "progress is True or False, got 'no'"),
        # Trained here, without a word, and without the check that the study fits in memory.
        ({"address": "203.0.113.7:6379"}, "address is the Ray cluster to use: give it with"),
        ({"workers": 0}, r"workers is a whole number > 0 \(None: a core per num_threads\), got 0"),
        ({"workers": 1.5}, "workers is a whole number > 0 .* got 1.5"),
        ({"workers": True}, "workers is a whole number > 0 .* got True"),
        ({"backend": "dask"}, "unknown backend 'dask'; valid backends: local, ray"),
    ],
    ids=["progress", "address", "workers 0", "workers 1.5", "workers True", "backend"],
)
def test_run_comparisons_own_arguments_are_checked_as_the_command_checks_them(
    arguments, message, tmp_path, in_process
):
    with pytest.raises(DQNError, match=message) as err:  # an InputError, as train's, for progress
        run_comparison(BASE, TWO, [0], tmp_path / "out", **{"progress": False, **arguments})
    assert "\n" not in str(err.value)
    assert in_process == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("variants, seeds", [(TWO, []), ([], [0]), ([], [])])
def test_a_study_of_no_seed_or_no_variant_is_refused_before_anything_is_written(
    variants, seeds, tmp_path, in_process
):
    # With no seed it wrote results.json and results.csv, then failed with an IndexError.
    with pytest.raises(ConfigError, match="a study needs at least one variant and one seed, got"):
        run_comparison(BASE, variants, seeds, tmp_path / "out", progress=False)
    assert in_process == [] and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- labels
ESCAPES = ["../../escaped", "a/b", ".hidden", "..", "a b", "a\\b", ""]


@pytest.mark.parametrize("label", ESCAPES[:-1])
def test_a_variant_label_that_is_not_a_plain_name_is_refused(label, tmp_path, capsys):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    config, out = tiny_yaml(tmp_path), tmp_path / "deep" / "er" / "out"
    line = refused_cli(
        ["--config", config, "--variants", f"{label}:loss=l2", "--seeds", "1", "--out", out],
        capsys,
        tmp_path,
    )
    assert f"variant label {label!r} may hold only ASCII letters, digits and _ . + -" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            "ok: {}\n../../escaped: {loss: l2}\n",
            "sweep.yaml: variant label '../../escaped' may hold",
        ),
        # Plain YAML would keep the second and drop the first without a word.
        (
            "a: {}\nb: {gamma: 0.9}\na: {loss: l2}\n",
            "sweep.yaml sets key 'a' twice (again on line 3)",
        ),
    ],
    ids=["a label that is not a plain name", "a variant named twice"],
)
def test_a_variants_file_with_a_bad_label_is_refused(text, fragment, tmp_path, capsys):
    (tmp_path / "sweep.yaml").write_text(text)
    line = refused_cli(
        ["--variants-file", tmp_path / "sweep.yaml", "--seeds", "1", "--out", tmp_path / "out"],
        capsys,
        tmp_path,
    )
    assert fragment in line


@pytest.mark.parametrize("label", ESCAPES)
def test_the_api_refuses_such_labels_for_variants_and_members(label, tmp_path):
    with pytest.raises(ConfigError, match="may hold only ASCII letters, digits"):
        Variant(label, ())
    with pytest.raises(ConfigError, match=re.escape(f"member label {label!r} may hold only")):
        train_population(BASE, [Member({}, 0, label)], out_dir=tmp_path / "p", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_label_too_long_to_name_a_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    # A 260-character label failed its run in the worker ("File name too long": a file name
    # holds 255 bytes) after the study had started; 100 characters are allowed.
    Variant("a" * 100, ())
    config, out = tiny_yaml(tmp_path), tmp_path / "out"
    label = "a" * 101
    line = refused_cli(
        ["--config", config, "--variants", f"{label}:loss=l2", "--seeds", "1", "--out", out],
        capsys,
        tmp_path,
    )
    assert line.endswith(
        "is 101 characters long; at most 100, since it names run folders (<label>-seed<k>)"
    )
    with pytest.raises(ConfigError, match="member label 'a{20}'... is 101 characters long"):
        train_population(BASE, [Member({}, 0, label)], out_dir=tmp_path / "p", progress=False)
    assert not out.exists() and not (tmp_path / "p").exists()


def test_the_labels_in_use_stay_valid():
    # The README's and the docs' commands, and every committed sweep.
    commands = ("l2+gradclip:loss=l2", "numpy-8envs:num_envs=8", "previous-default:n_step=1")
    for text in (*commands, "numpy:learner=numpy"):  # the last: the Acrobot study's
        Variant.parse(text)
    for text in ("tensorflow-lr0:learning_rate=1e-12", "polyak0.05:target_tau=0.05", "A_1"):
        Variant.parse(text)
    for path in sorted((ROOT / "configs" / "sweeps").glob("cartpole-trust*.yaml")):
        if path.name != "cartpole-trust-base.yaml":
            assert read_variants_file(path)
    assert Member({}, 0).label == "member" and Member({}, 0, "member3").label == "member3"


# ---------------------------------------------------------------------- seed, keys
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--variants", "a:seed=5"], "variant 'a' sets 'seed'"),
        ("a: {seed: 3}\n", "variant 'a' sets 'seed'"),
        ("a: {1: 2}\n", "variant 'a': config keys must be strings, got 1"),
        ("1: {gamma: 0.9}\n", "the label 1 was read as a number, not a name: quote it"),
        (["--variants", "a:loss=huber", "b:loss=hubre"], "variant 'b': unknown loss 'hubre'"),
        ("a: {}\nb: {gama: 0.9}\n", "variant 'b': unknown config key 'gama'"),
        # PyYAML raised a bare ValueError for these: a traceback, exit 1.
        (["--variants", "a:gamma=!!float x"], "variant 'a': override 'gamma': its tag !!float"),
        ("a: {seed: !!int 1e3}\n", "sweep.yaml is not valid YAML (line 1): its tag !!int"),
    ],
    ids=[
        "--variants",
        "variants file",
        "a number as key",
        "a number as label",
        "a bad value",
        "an unknown key",
        "a value its tag cannot read, --variants",
        "a value its tag cannot read, variants file",
    ],
)
def test_a_variant_that_sets_the_seed_or_a_key_that_is_not_text_is_refused(
    args, fragment, tmp_path, capsys
):
    if isinstance(args, str):
        (tmp_path / "sweep.yaml").write_text(args)
        args = ["--variants-file", tmp_path / "sweep.yaml"]
    line = refused_cli([*args, "--seeds", "1", "--out", tmp_path / "out"], capsys, tmp_path)
    assert fragment in line
    if "seed" in fragment:
        assert "--seeds and --first-seed" in line


@pytest.mark.parametrize(
    "flag, value, fragment",
    [
        ("--seeds", "0", "--seeds must be in [1, 10_000], got 0"),
        ("--seeds", "100000000", "--seeds must be in [1, 10_000], got 100000000"),
        ("--workers", "0", "--workers must be > 0, got 0"),
        ("--first-seed", "-1", "--first-seed must be in [0, 2**32 - seeds = 4294967295], got -1"),
        (  # its last seed would be 2**32, past a 32-bit seed
            "--first-seed",
            "4294967296",
            "--first-seed must be in [0, 2**32 - seeds = 4294967295], got 4294967296",
        ),
    ],
)
def test_a_count_out_of_range_is_named_with_its_value(flag, value, fragment, tmp_path, capsys):
    config = tiny_yaml(tmp_path)  # were it accepted, a tiny study
    counts = {"--seeds": "1", "--workers": "1", "--first-seed": "0", flag: value}
    args = ["--config", config, "--out", tmp_path / "out", "--no-progress"]
    args += [a for pair in counts.items() for a in pair]
    code = compare_main([str(a) for a in args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_the_ends_of_the_seed_range_are_accepted(tmp_path, capsys):
    # 2**32 - 1 is the last 32-bit seed: one seed from there fits (the message's own bound).
    missing = tmp_path / "missing.yaml"  # stops the study just past the range checks
    args = ["--first-seed", "4294967295", "--seeds", "1", "--config", str(missing)]
    assert compare_main([*args, "--out", str(tmp_path / "out")]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "member, fragment",
    [
        (lambda: Member({"seed": 3}, 0, "a"), "member 'a' sets 'seed' in its overrides"),
        (lambda: ({"seed": 3}, 0), "member 'member0' sets 'seed'"),
        (lambda: Member({1: 2}, 0, "a"), "member 'a': config keys must be strings, got 1"),
        (lambda: ({"output_dir": "x"}, 0), "member 'member0' sets 'output_dir'"),
        (lambda: Member({"loss": "hubre"}, 0, "b"), "member 'b': unknown loss 'hubre'"),
    ],
    ids=["Member", "pair", "a number as key", "output_dir", "a bad value"],
)
def test_a_member_that_sets_the_seed_or_a_key_that_is_not_text_is_refused(
    member, fragment, tmp_path
):
    with pytest.raises(ConfigError, match=fragment):
        train_population(BASE, [member()], out_dir=tmp_path / "p", progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- envs of variants
OTHER_ENVS = [
    ("Pendulum-v1", UnsupportedSpaceError, "DQN needs a Discrete action space"),
    ("NoSuchEnv-v0", ConfigError, "unknown env id 'NoSuchEnv-v0'"),
]


@pytest.mark.parametrize("env_id, error, fragment", OTHER_ENVS, ids=["continuous", "unknown"])
def test_a_variant_on_an_env_dqn_cannot_train_is_refused_before_any_run(
    env_id, error, fragment, tmp_path, in_process, capsys
):
    """Not after the study's other runs trained, in a worker, with a traceback: the variant's
    env is checked with the base config's, before anything is written."""
    bad = Variant.parse(f"other:env_id={env_id}")
    with pytest.raises(error, match=fragment):
        run_comparison(BASE, [TWO[0], bad], [0], tmp_path / "api", progress=False)
    args = ["--config", tiny_yaml(tmp_path), "--variants", "l2", f"other:env_id={env_id}"]
    code = compare_main([str(a) for a in [*args, "--seeds", "1", "--out", tmp_path / "cli"]])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert "variant 'other': " in lines[0]  # which of the variants named it
    assert in_process == [] and not (tmp_path / "api").exists()
    assert not (tmp_path / "cli").exists()


def test_an_env_every_variant_shares_is_refused_without_naming_one(tmp_path, in_process):
    base = BASE.replace(env_kwargs={"bogus": 1})  # the base config's, not a variant's
    with pytest.raises(ConfigError) as refused:
        run_comparison(base, TWO, [0], tmp_path / "out", workers=1, progress=False)
    assert str(refused.value).startswith("env 'CartPole-v1' does not take env_kwargs")
    assert in_process == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("env_id, error, fragment", OTHER_ENVS, ids=["continuous", "unknown"])
def test_members_on_an_env_dqn_cannot_train_are_refused_before_anything_is_written(
    env_id, error, fragment, tmp_path
):
    """The members' env is the one that counts, not the base config's."""
    with pytest.raises(error, match=fragment):
        train_population(BASE, [({"env_id": env_id}, 0)], out_dir=tmp_path / "p", progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- list values
def test_a_list_value_in_a_variant_keeps_its_commas():
    v = Variant.parse("wide:hidden_sizes=[8,8],loss=l2, gamma=0.9")
    assert dict(v.overrides) == {"hidden_sizes": [8, 8], "loss": "l2", "gamma": 0.9}
    assert v.config(BASE, 0).hidden_sizes == (8, 8)
    assert dict(Variant.parse("x:hidden_sizes=[4, 4]").overrides) == {"hidden_sizes": [4, 4]}


def test_a_stray_closing_bracket_does_not_hide_the_commas_after_it():
    # Depth never goes below 0: "]" without its "[" leaves the next comma a separator.
    assert compare._split_top_level("a=],b=1,c=[2,3]") == ["a=]", "b=1", "c=[2,3]"]


# ---------------------------------------------------------------------- a worker crashes
def test_a_worker_that_raises_returns_its_error_and_keeps_the_traceback(tmp_path):
    # A config dict no DQNConfig accepts: both worker functions raise before any training.
    from dqn.study_runs import Job, make_tasks

    jobs = [
        Job("l2-seed0", {"gamma": 2.0}, "l2", str(tmp_path / "runs" / "l2-seed0")),
        Job("huber-seed0", {"gamma": 3.0}, "huber", str(tmp_path / "runs" / "huber-seed0")),
    ]
    [alone] = make_tasks(jobs[:1], tmp_path, 1, "process")
    good = jobs[1]._replace(config=BASE.to_dict())
    [(name, fn, (_, folder, _))] = make_tasks([good], tmp_path, 1, "population")
    chunk = ("population-x", fn, ([jobs[1]], folder, "population-x"))  # with the bad config
    results = dict(run_local([alone, chunk], workers=1))
    assert results["l2-seed0"].error.startswith("ConfigError: config key 'gamma'")
    assert results["l2-seed0"].traceback_file == str(tmp_path / "runs" / "l2-seed0" / ERROR_FILE)
    assert "Traceback" in Path(results["l2-seed0"].traceback_file).read_text()
    folder = Path(folder)
    assert results["population-x"].traceback_file == str(folder / ERROR_FILE)
    assert "config key 'gamma'" in (folder / ERROR_FILE).read_text()


def test_a_workers_warning_prints_as_the_commands_one_line(capfd):
    """A warning in a worker process (a study's resume falling back to an older checkpoint)
    printed in Python's two-line form, source line and all, under the command's own."""
    import warnings

    from dqn.command_line import one_line_warnings

    with one_line_warnings("dqn-compare"):
        [(name, result)] = run_local([("warns", warnings.warn, ("a worker's word",))], workers=1)
    assert (name, result) == ("warns", None)
    assert capfd.readouterr().err.splitlines()[-1] == "dqn-compare: warning: a worker's word"


DIED = (
    "its worker process died (killed, out of memory, or failing as it started: its own lines "
    "above say why), or another worker did and the pool stopped this one with it"
)


def test_a_worker_process_that_dies_is_a_failed_task(tmp_path):
    [(name, result)] = run_local([("killed-seed0", os._exit, (9,))], workers=1)
    assert name == "killed-seed0"
    assert result == TaskFailed(DIED, None)


def test_a_worker_killed_alone_is_a_crash_though_the_pool_then_stops_the_others():
    # The out-of-memory killer's SIGKILL broke the pool, which then SIGTERMs the other workers;
    # their handlers set the study's stop, and the study said "interrupted", exit 130 (4 of 6
    # tries), as for a Ctrl-C. This job sets the stop as those handlers do, then dies.
    die = "import os, dqn.run_log as r; r._SHARED_STOP.set(); os._exit(9)"
    [(name, result)] = run_local([("killed-seed0", exec, (die,))], workers=1)
    assert (name, result) == ("killed-seed0", TaskFailed(DIED, None))


def test_a_failed_run_is_one_line_naming_it_and_its_traceback(tmp_path, monkeypatch, capsys):
    """The other runs finish and keep their result.json; no results.csv or summary claims
    a study with runs missing; the CLI prints one line and exits with an error code."""
    finished = []

    def backend(name, workers, address):
        def run(tasks, on_steps):
            for task_name, fn, args in tasks:
                if task_runs((task_name, fn, args))[0].startswith("l2"):
                    yield task_name, TaskFailed("RuntimeError: boom", f"/x/{task_name}/error.txt")
                else:
                    finished.append(task_name)
                    yield task_name, fn(*args)

        return run

    monkeypatch.setattr(compare, "backend_runner", backend)
    out = tmp_path / "out"
    with pytest.raises(WorkerError) as failed:
        run_comparison(BASE, TWO, [0, 1], out, workers=1, progress=False, runner="process")
    assert isinstance(failed.value, DQNError)
    assert str(failed.value) == (
        "2 runs failed (l2-seed0, l2-seed1): RuntimeError: boom (traceback in "
        "/x/l2-seed0/error.txt; 1 other task(s) too, each with its error.txt); the finished "
        "runs are kept: a rerun trains only the others"
    )
    assert finished == ["huber-seed0", "huber-seed1"]
    assert (out / "runs" / "huber-seed1" / "result.json").is_file()
    assert not (out / "results.csv").exists() and not (out / "summary.md").exists()

    args = ["--config", tiny_yaml(tmp_path), "--variants", "l2", "--seeds", "1"]
    code = compare_main([str(a) for a in [*args, "--out", tmp_path / "cli", "--no-progress"]])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines  # a crash, not bad input (2)
    assert "1 run failed (l2-seed0): RuntimeError: boom (traceback in" in lines[0]


def test_a_rerun_that_trains_a_failed_run_to_its_end_removes_its_old_error(tmp_path, in_process):
    # A traceback left beside a finished run's result.json says it failed. (A process's run:
    # a population chunk's runs are trained again in folders deleted whole.)
    entry = tmp_path / "runs" / "l2-seed0"
    entry.mkdir(parents=True)
    (entry / ERROR_FILE).write_text("Traceback ... MemoryError (the first attempt's)\n")
    run_comparison(
        BASE, [Variant.parse("l2")], [0], tmp_path, workers=1, progress=False, runner="process"
    )
    assert in_process == ["l2-seed0"] and (entry / "result.json").is_file()
    assert not (entry / ERROR_FILE).exists()


def test_a_population_chunk_that_fails_names_every_run_in_it(tmp_path, monkeypatch):
    def backend(name, workers, address):
        def run(tasks, on_steps):
            for task_name, _, _ in tasks:
                yield task_name, TaskFailed("RuntimeError: boom", f"/x/{task_name}/error.txt")

        return run

    monkeypatch.setattr(compare, "backend_runner", backend)
    with pytest.raises(WorkerError, match=r"^2 runs failed \(l2-seed0, huber-seed0\): Runtime"):
        run_comparison(BASE, TWO, [0], tmp_path, workers=1, progress=False)
    assert not (tmp_path / "results.json").exists()


def test_a_run_that_failed_is_reported_even_when_the_study_was_stopped_too():
    # A Ctrl-C after a crash: "interrupted, rerun" alone hid the crash a rerun would meet again.
    import signal

    from dqn.study_runs import TaskInterrupted, _run_worker

    tasks = [(n, _run_worker, ({}, "l2", "/x")) for n in ("l2-seed0", "l2-seed1")]

    def run_tasks(tasks, on_steps):
        yield "l2-seed0", TaskFailed("RuntimeError: boom", "/x/l2-seed0/error.txt")
        yield "l2-seed1", TaskInterrupted(signal.SIGINT)

    steps = {"l2-seed0": 300, "l2-seed1": 300}
    with pytest.raises(WorkerError, match=r"^1 run failed \(l2-seed0\): RuntimeError: boom"):
        compare._train_tasks(tasks, run_tasks, {}, steps, progress=False)


def test_the_api_never_trains_over_an_earlier_run_or_population(tmp_path):
    from dqn.loop import train

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "config.yaml").write_text("seed: 3\n")
    (tmp_path / "a-file").write_text("x")
    before = tree(tmp_path)
    calls = {
        "train into a run": lambda: train(BASE, run_dir=earlier, progress=False),
        "a population into it": lambda: train_population(BASE, [({}, 0)], out_dir=earlier),
        "a member into it": lambda: train_population(
            BASE, [({}, 0)], out_dir=tmp_path / "new", run_dirs=[earlier]
        ),
        "train into a file": lambda: train(BASE, run_dir=tmp_path / "a-file", progress=False),
        "a population into a file": lambda: train_population(
            BASE, [({}, 0)], out_dir=tmp_path / "a-file"
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError, match="already exists and is not empty|is a file") as err:
            call()
        assert "\n" not in str(err.value), name
    assert tree(tmp_path) == before and not (tmp_path / "new").exists()
    with pytest.raises(ConfigError, match="list of 1 run folders"):
        train_population(BASE, [({}, 0)], out_dir=tmp_path / "new", run_dirs=str(earlier))


@pytest.mark.parametrize("kind", ["run", "population"])
def test_a_study_into_a_run_or_population_folder_is_refused_and_changes_nothing(kind, tmp_path):
    from dqn import train

    folder = tmp_path / kind
    if kind == "run":
        train(BASE, run_dir=folder, progress=False, log_tensorboard=False)
    else:
        train_population(BASE, [({}, 0)], out_dir=folder, progress=False, log_tensorboard=False)
    before = tree(folder)
    with pytest.raises(ConfigError, match=f"{re.escape(str(folder))} holds a run, population"):
        run_comparison(BASE, TWO, [0], folder, workers=1, progress=False)
    assert tree(folder) == before


@pytest.mark.parametrize("kind", ["run", "population", "study's runs"])
def test_a_study_or_population_inside_another_ones_folder_is_refused(kind, tmp_path):
    """Inside a run's, a population's or a study's runs/ folder, a new study or population
    mixed its files with theirs (the study's next rerun counted the new one as a run of its
    own): refused in one line, nothing written, as a folder that is one already was."""
    from dqn import train

    holder = {"run": tmp_path / "r", "population": tmp_path / "p"}.get(kind, tmp_path / "s/runs")
    if kind == "study's runs":  # a study's layout: runs/<label>-seed<k>/run/
        (holder / "huber-seed0" / "run").mkdir(parents=True)
    elif kind == "run":
        train(BASE, run_dir=holder, progress=False, log_tensorboard=False)
    elif kind == "population":
        train_population(BASE, [({}, 0)], out_dir=holder, progress=False, log_tensorboard=False)
    before = tree(tmp_path)
    message = f"inside the {kind} folder {re.escape(str(holder.absolute()))}, whose files it"
    with pytest.raises(ConfigError, match=f"study folder .* {message}"):
        run_comparison(BASE, TWO, [0], holder / "new", workers=1, progress=False)
    with pytest.raises(ConfigError, match=f"population folder .* {message}"):
        train_population(BASE, [({}, 0)], out_dir=holder / "deeper" / "new", progress=False)
    assert tree(tmp_path) == before


def test_a_projects_runs_folder_of_plain_runs_takes_new_runs_populations_and_studies(
    tmp_path, monkeypatch
):
    """runs/ is where every run goes by default: once `make train` has put a run there, a run,
    a population or a study given a folder in runs/ is not inside a study's runs/ (only a
    study writes runs/<name>/run/), and is accepted."""
    from dqn import train
    from dqn.agent_files import check_not_nested, enclosing_output

    monkeypatch.chdir(tmp_path)
    first = train(BASE, progress=False, log_tensorboard=False)  # runs/<env>-<loss>-seed0-<time>
    assert Path(first.run_dir).absolute().parent == tmp_path / "runs"
    for folder in ("runs/my-run", "runs/study", "runs/cmp"):
        assert enclosing_output(Path(folder)) is None
        check_not_nested(Path(folder), "folder", "elsewhere")
    train_population(BASE, [({}, 0)], out_dir="runs/study", progress=False, log_tensorboard=False)
    assert (tmp_path / "runs/study").is_dir()


def test_the_default_worker_count_is_lowered_to_what_fits_in_memory(
    tmp_path, in_process, monkeypatch
):
    """One worker per CPU is the default; on a machine with many CPUs and little memory each,
    the study runs with as many as fit (a warning says how many), not refused. A count given
    with --workers (workers=) is the user's: refused if it does not fit."""
    import warnings

    from dqn import members, runtime
    from dqn.errors import ConfigError

    one_run = members.population_bytes([BASE], 4, 2, runtime=True)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    monkeypatch.setattr(members, "available_memory_bytes", lambda: 3 * one_run + one_run // 2)
    used = []
    chosen = compare.backend_runner
    monkeypatch.setattr(
        compare, "backend_runner", lambda b, w, a: used.append(w) or chosen(b, w, a)
    )
    with pytest.raises(ConfigError, match="available") as refused:
        run_comparison(BASE, TWO, range(4), tmp_path / "s", workers=8, runner="process")
    assert not (tmp_path / "s").exists()
    # one run a process already: --runner process is no advice to give it
    assert "train fewer runs at once (dqn-compare: fewer --workers)" in str(refused.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_comparison(BASE, TWO, range(4), tmp_path / "s", progress=False, runner="process")
    assert len(rows) == 8 and used[-1] == 3
    assert [str(w.message) for w in caught if "worker processes" in str(w.message)] == [
        "3 worker processes, not 8 (one per CPU): 8 at once would not fit in this machine's "
        "available memory"
    ]


def test_the_default_worker_count_goes_down_to_a_single_worker_before_refusing(
    tmp_path, in_process, monkeypatch
):
    # Memory for one run at a time, not two: the study still runs, one worker after the other.
    import warnings

    from dqn import members, runtime

    one_run = members.population_bytes([BASE], 4, 2, runtime=True)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    monkeypatch.setattr(members, "available_memory_bytes", lambda: one_run + one_run // 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_comparison(BASE, TWO[:1], range(2), tmp_path / "s", progress=False)
    assert len(rows) == 2 and sorted(in_process) == ["l2-seed0", "l2-seed1"]
    assert [str(w.message) for w in caught if "worker process" in str(w.message)] == [
        "1 worker process, not 8 (one per CPU): 8 at once would not fit in this machine's "
        "available memory"
    ]


@pytest.mark.parametrize(
    "variants, seeds, fragment",
    [
        ("huber", [0], "variants is a list of variants, got 'huber'"),
        ([3], [0], "a variant is a Variant or a text such as 'huber', got 3"),
        (["huber"], 3, "seeds is a list of integers, such as range(30), got 3"),
        (["huber"], [0.5], "seeds is a list of integers"),
        (["huber"], [True], "seeds is a list of integers"),
    ],
)
def test_run_comparison_names_arguments_of_the_wrong_kind(variants, seeds, fragment, tmp_path):
    # They were an AttributeError or a TypeError from deep inside.
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        run_comparison(BASE, variants, seeds, tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_run_comparison_takes_variants_as_the_command_line_writes_them(tmp_path, in_process):
    import numpy as np

    rows = run_comparison(
        BASE, ["huber", "small:loss=l2,gamma=0.9"], np.arange(1), tmp_path / "s", progress=False
    )
    assert [(r["variant"], r["loss"], r["seed"]) for r in rows] == [
        ("huber", "huber", 0),
        ("small", "l2", 0),
    ]


def test_train_population_names_members_that_are_no_list(tmp_path):
    with pytest.raises(ConfigError, match="members is a list of members, .* got None"):
        train_population(BASE, None, out_dir=tmp_path / "p", progress=False)
    members = [Member({}, 0), Member({}, 1)]
    folders = (tmp_path / f"r{k}" for k in range(2))  # was len()'s TypeError
    with pytest.raises(ConfigError, match="2 members need a list of 2 run folders, got generator"):
        train_population(BASE, members, out_dir=tmp_path / "p", run_dirs=folders, progress=False)
    with pytest.raises(ConfigError, match="2 members need a list of 2 run folders$"):
        train_population(BASE, members, out_dir=tmp_path / "p", run_dirs=["a"], progress=False)
    with pytest.raises(ConfigError, match="2 members need a list of 2 run folders$"):
        # one folder too many is no less a slip than one too few (zip dropped it silently)
        run_dirs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
        train_population(BASE, members, out_dir=tmp_path / "p", run_dirs=run_dirs, progress=False)
    # A string is a sequence of 2 characters: not two folders named "x" and "y".
    with pytest.raises(ConfigError, match="2 members need a list of 2 run folders, got str"):
        train_population(BASE, members, out_dir=tmp_path / "p", run_dirs="xy", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_run_beside_a_studys_runs_is_refused_as_its_rerun_would_refuse_it(tmp_path, capsys):
    # dqn-train --run-dir study/new trained, and the study's rerun then refused the folder
    # ("holds files a study does not write"). A plain project's runs/ is no study.
    from dqn.cli import train_main

    (tmp_path / "study" / "runs" / "huber-seed0" / "run").mkdir(parents=True)
    assert train_main(["--run-dir", str(tmp_path / "study" / "new"), "--no-progress"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"is inside the study folder {tmp_path / 'study'}, whose rerun would refuse" in line
    assert not (tmp_path / "study" / "new").exists()


def test_a_study_started_at_a_scripts_top_level_says_so_from_its_workers(tmp_path):
    # spawn imports the main script in each worker: the unguarded call ran again there, and the
    # worker died of a FolderBusyError, which the study called "killed, or out of memory".
    import subprocess
    import sys

    script = tmp_path / "study.py"
    script.write_text(
        "from dqn import DQNConfig\n"
        "from dqn.compare import run_comparison\n"
        "config = DQNConfig(learner='numpy', hidden_sizes=(8,), total_env_steps=600,\n"
        "    learning_starts_env_steps=100, train_every_env_steps=50,\n"
        "    gradient_steps_per_train=1, target_update_every_grad_steps=5)\n"
        "run_comparison(config, ['huber'], [0], 'out', workers=1, progress=False)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    said = "ConfigError: run_comparison ran again in a worker process of the study, which imports"
    assert said in done.stderr and 'under `if __name__ == "__main__":`' in done.stderr
    assert "failing as it started: its own lines above say why" in done.stderr.splitlines()[-1]
    assert not (tmp_path / "out" / "results.json").exists()
