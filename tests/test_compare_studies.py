"""scripts/compare_studies.py reads a study's results.json or, where only that was kept, its
results.csv: the same rows give the same comparison."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

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
