"""scripts/trust_diagnostics.py refuses what it cannot read in one line, before TensorFlow."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    path = ROOT / "scripts" / "trust_diagnostics.py"
    spec = importlib.util.spec_from_file_location("trust_diagnostics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["missing"], "missing has no results.json"),
        (["study", "--episodes", "0"], "--episodes must be > 0, got 0"),
    ],
)
def test_what_it_cannot_read_is_one_line_and_exit_2(args, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "results.json").write_text("[]")
    assert load_script().main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"trust_diagnostics: {fragment}"]
