"""scripts/compare_studies.py reads a study's results.json or, where only that was kept, its
results.csv: the same rows give the same comparison. What it cannot read, or write to --out,
is one line and exit 2, with no file written or replaced."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import refusal, run_script

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location(
        "compare_studies", ROOT / "scripts" / "compare_studies.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(finals):
    """One variant's runs, seeds 0.., with these final evaluations; a None final is a run the
    divergence guard stopped before any evaluation (no solve, no AUC either)."""
    return [
        {
            "variant": "huber",
            "loss": "huber",
            "seed": seed,
            "first_solve_env_step": 10_000 if final == 500.0 else None,
            "final_eval_mean": final,
            "eval_auc": None if final is None else final - 20.0,
            "diverged_at_env_step": 8_960 if final is None else None,
        }
        for seed, final in enumerate(finals)
    ]


def write_json(folder: Path, runs):
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(runs))


def write_csv(folder: Path, runs):
    folder.mkdir()
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(runs[0]))
        writer.writeheader()
        for run in runs:  # None as an empty cell, as dqn-compare writes it
            writer.writerow({k: "" if v is None else v for k, v in run.items()})


def test_a_csv_study_reads_as_its_json_twin(tmp_path):
    script = load_script()
    runs = rows([500.0, 480.5, None, 120.25])
    write_json(tmp_path / "json", runs)
    write_csv(tmp_path / "csv", runs)
    assert script.load(tmp_path / "csv") == script.load(tmp_path / "json")


def test_identical_studies_are_indistinguishable_and_different_ones_are_not(tmp_path):
    script = load_script()
    write_json(tmp_path / "a", rows([500.0] * 10))
    write_csv(tmp_path / "same", rows([500.0] * 10))
    write_csv(tmp_path / "worse", rows([20.0] * 10))
    line = script.table(tmp_path / "a", tmp_path / "same").splitlines()[-1]
    assert "| huber | 10 | 10/10 [0.69, 1.00] | 10/10 [0.69, 1.00] |" in line
    assert "| 1.00 / 1.00 |" in line
    line = script.table(tmp_path / "a", tmp_path / "worse").splitlines()[-1]
    assert "| 0/10 [0.00, 0.31] |" in line
    # 10 against 10 fully separated samples: Kolmogorov-Smirnov's exact p is 2 / C(20, 10) =
    # 1.1e-5; Mann-Whitney's, with every value tied within its sample, 1.6e-5 (scipy 1.x).
    assert "| 0.00 / 0.00 |" in line


def test_solved_at_end_counts_against_the_threshold_the_header_names(tmp_path, capsys):
    # A study of another env than CartPole (Acrobot's -100, a solve_return of 40) read 0/n at
    # a fixed 475, under a header that did not say so.
    script = load_script()
    write_json(tmp_path / "a", rows([45.0, 41.0, 39.0]))
    table = script.table(tmp_path / "a", tmp_path / "a", threshold=40.0)
    assert "solved at end A (final eval >= 40)" in table
    assert "| huber | 3 | 2/3 [" in table
    assert "solved at end A (final eval >= 475)" in script.table(tmp_path / "a", tmp_path / "a")
    assert script.main([str(tmp_path / "a"), str(tmp_path / "a"), "--threshold", "40"]) == 0
    assert "| 2/3 [" in capsys.readouterr().out
    assert script.main([str(tmp_path / "a"), str(tmp_path / "a"), "--threshold", "nan"]) == 2
    assert "--threshold is a finite number" in capsys.readouterr().err
    # inf would count no run solved, under a header saying ">= inf".
    assert script.main([str(tmp_path / "a"), str(tmp_path / "a"), "--threshold", "inf"]) == 2
    assert "--threshold is a finite number, got inf" in capsys.readouterr().err


def test_a_folder_without_results_is_one_line_and_exit_2(tmp_path, capsys):
    script = load_script()
    write_json(tmp_path / "a", rows([500.0]))
    (tmp_path / "empty").mkdir()
    assert script.main([str(tmp_path / "a"), str(tmp_path / "empty")]) == 2
    assert "has no results.json or results.csv" in capsys.readouterr().err


def test_studies_that_share_no_run_are_one_line_naming_what_each_holds(tmp_path, capsys):
    script = load_script()
    write_json(tmp_path / "a", rows([500.0] * 3))
    other = [{**r, "seed": r["seed"] + 10} for r in rows([500.0] * 2)]
    write_json(tmp_path / "b", other)
    assert script.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "share no run (variant and seed): A holds huber seeds 0-2, B holds huber seeds 10-11"
    )
    # One shared seed is a comparison of one run each, not an empty row.
    write_json(tmp_path / "c", [{**r, "seed": r["seed"] + 2} for r in rows([500.0] * 2)])
    assert "| huber | 1 |" in script.table(tmp_path / "a", tmp_path / "c").splitlines()[-1]


def refused(script, capsys, *argv) -> str:
    """main's one stderr line for ``argv``, which it refuses with exit 2, printing no table."""
    assert script.main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    return err


def two_studies(tmp_path) -> tuple[Path, Path]:
    write_json(tmp_path / "a", rows([500.0] * 3))
    write_json(tmp_path / "b", rows([480.0] * 3))
    return tmp_path / "a", tmp_path / "b"


def test_an_out_under_a_file_or_on_a_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    script = load_script()
    a, b = two_studies(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    err = refused(script, capsys, a, b, "--out", tmp_path / "afile" / "x.md")
    assert err.endswith(f"{tmp_path / 'afile'} is not a folder\n")
    assert (tmp_path / "afile").read_text() == "mine\n"
    (tmp_path / "adir").mkdir()
    assert "adir is a folder: give it a file name" in refused(
        script, capsys, a, b, "--out", tmp_path / "adir"
    )
    assert list((tmp_path / "adir").iterdir()) == []


def test_an_out_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    # A read-only folder, as tests may run as root, where chmod does not stop a write.
    def read_only(path, text):
        raise OSError(30, "Read-only file system", str(tmp_path / ".x.md.tmp"))

    script = load_script()
    monkeypatch.setattr(script, "atomic_write_text", read_only)
    a, b = two_studies(tmp_path)
    err = refused(script, capsys, a, b, "--out", tmp_path / "x.md")
    assert err == f"compare_studies.py: error: cannot write to {tmp_path / 'x.md'}: " + (
        "Read-only file system\n"
    )


def test_a_tilde_the_shell_left_in_out_is_the_home_folder(tmp_path, capsys, monkeypatch):
    # --out=~/t.md made a folder named "~" in the working folder (rm -rf ~ deletes home).
    script = load_script()
    a, b = two_studies(tmp_path)
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "cwd")
    assert script.main([str(a), str(b), "--out=~/t.md"]) == 0
    assert (tmp_path / "home" / "t.md").is_file() and list(Path.cwd().iterdir()) == []


def test_out_replaces_a_table_it_wrote_but_no_other_file(tmp_path, capsys):
    script = load_script()
    a, b = two_studies(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    assert "notes.md exists and is not a table of compare_studies.py: not replaced" in refused(
        script, capsys, a, b, "--out", notes
    )
    assert notes.read_text() == "my notes\n"
    # A rerun refreshes the report it wrote before (here that of other studies).
    report = tmp_path / "report.md"
    assert script.main([str(a), str(a), "--out", str(report)]) == 0
    assert script.main([str(a), str(b), "--out", str(report)]) == 0
    assert report.read_text() == script.table(a, b)


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("results.json", "{x", "results.json: Expecting property name"),
        ("results.json", '[{"variant": "huber"}]', "results.json: run 1 has no 'seed'"),
        ("results.json", '{"variant": "huber"}', "results.json is not a list of runs"),
        ("results.csv", "variant,seed\nhuber,x\n", "results.csv: line 2: invalid literal"),
        ("results.csv", "variant,seed\nhuber\n", "results.csv: line 2 has not one cell per"),
    ],
)
def test_a_results_file_it_cannot_read_is_one_line_naming_it(
    name, text, fragment, tmp_path, capsys
):
    script = load_script()
    a, _ = two_studies(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / name).write_text(text)
    err = refused(script, capsys, a, tmp_path / "bad", "--out", tmp_path / "x.md")
    assert str(tmp_path / "bad" / fragment) in err
    assert not (tmp_path / "x.md").exists()


def test_a_missing_argument_is_one_line_from_the_command_line(tmp_path):
    assert refusal(run_script("compare_studies.py", tmp_path)) == (
        "compare_studies.py: error: the following arguments are required: second "
        "(see compare_studies.py --help)"
    )


def test_a_study_holding_one_run_twice_is_one_line_naming_it(tmp_path, capsys):
    # Two studies' results.csv joined: the comparison kept the later row alone, without a word.
    script = load_script()
    a, _ = two_studies(tmp_path)
    runs = rows([500.0, 480.0])
    write_csv(tmp_path / "joined", [*runs, {**runs[0], "final_eval_mean": 10.0}])
    err = refused(script, capsys, a, tmp_path / "joined")
    assert f"{tmp_path / 'joined' / 'results.csv'} holds run huber seed 0 twice" in err


def exact_permutation_pvalues(a, b):
    """Two-sided Mann-Whitney and Kolmogorov-Smirnov p-values of samples without ties, by
    enumerating every split of the pooled values: the fraction of splits at least as extreme."""
    from itertools import combinations

    import numpy as np

    pooled = np.array(a + b, float)

    def u_and_d(x, y):
        u = sum(xi > yj for xi in x for yj in y)
        d = max(abs(np.mean(x <= v) - np.mean(y <= v)) for v in pooled)
        return abs(u - len(x) * len(y) / 2), d

    u0, d0 = u_and_d(np.array(a, float), np.array(b, float))
    splits = list(combinations(range(len(pooled)), len(a)))
    us, ds = zip(*(u_and_d(pooled[list(i)], np.delete(pooled, list(i))) for i in splits))
    return np.mean(np.array(us) >= u0 - 1e-9), np.mean(np.array(ds) >= d0 - 1e-9)


def test_every_cell_of_a_row_reads_its_own_study_and_column(tmp_path):
    from scipy import stats

    script = load_script()
    # No value ties, so the p-values are the exact ones; A's 475 is solved (>= 475), B's 480
    # alone is; A's run without an evaluation ranks below every other (as 0 does here).
    fa, fb = [500.0, 475.0, None, 120.25, 300.0], [480.0, 200.0, 100.0, 50.0, 60.0]
    ua, ub = [400.0, 10.0, None, 300.0, 350.0], [100.0, 150.0, 200.0, 250.0, 5.0]
    for name, finals, aucs in (("a", fa, ua), ("b", fb, ub)):
        write_json(tmp_path / name, [{**r, "eval_auc": u} for r, u in zip(rows(finals), aucs)])

    def ci(k, n):  # Clopper-Pearson from the beta quantiles
        low, high = stats.beta.ppf(0.025, k, n - k + 1), stats.beta.ppf(0.975, k + 1, n - k)
        return f"{k}/{n} [{low:.2f}, {high:.2f}]"

    def zero_for_none(x):
        return [0.0 if v is None else v for v in x]

    mf, kf = exact_permutation_pvalues(zero_for_none(fa), fb)
    mu, ku = exact_permutation_pvalues(zero_for_none(ua), ub)
    assert (round(mf, 2), round(kf, 2), round(ku, 2)) == (0.55, 0.87, 0.36)  # all told apart
    # Medians with the missing run last: A (0, 120.25, 300, 475, 500), B (50, 60, 100, 200, 480);
    # AUC A (0, 10, 300, 350, 400), B (5, 100, 150, 200, 250).
    assert script.table(tmp_path / "a", tmp_path / "b").splitlines()[-1] == (
        f"| huber | 5 | {ci(2, 5)} | {ci(1, 5)} | 300.0 / 100.0 | {mf:.2f} / {kf:.2f} | "
        f"300.0 / 150.0 | {mu:.2f} / {ku:.2f} |"
    )


def test_seeds_that_are_no_span_are_listed_one_by_one(tmp_path, capsys):
    script = load_script()
    write_json(tmp_path / "a", [{**r, "seed": s} for r, s in zip(rows([500.0] * 3), (0, 2, 5))])
    write_json(tmp_path / "b", [{**r, "seed": r["seed"] + 10} for r in rows([500.0] * 2)])
    assert script.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("A holds huber seeds 0, 2, 5, B holds huber seeds 10-11")
    )


def test_out_on_a_file_that_only_ends_like_the_tables_title_is_not_replaced(tmp_path, capsys):
    # The title's ending alone ("...; per variant, the runs of the seeds both hold.") could
    # close a line of someone's notes; the table's first line also starts with "A = ".
    script = load_script()
    a, b = two_studies(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text(f"Notes{script.TITLE_END}\nmine\n")
    assert "notes.md exists and is not a table of compare_studies.py" in refused(
        script, capsys, a, b, "--out", notes
    )
    assert notes.read_text() == f"Notes{script.TITLE_END}\nmine\n"


def test_a_results_json_that_is_a_folder_falls_back_to_the_results_csv(tmp_path):
    script = load_script()
    runs = rows([500.0, 480.5])
    write_csv(tmp_path / "csv", runs)
    (tmp_path / "csv" / "results.json").mkdir()  # not a results file: main accepts the csv
    assert script.load(tmp_path / "csv") == {"huber": runs}
