"""scripts/lock_wheels.py refuses an --only name its lock does not pin, before asking PyPI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = "packaging==24.1\ntyping-extensions==4.12.2\nnumpy==2.1.3\n"


def load_lock_wheels():
    spec = importlib.util.spec_from_file_location("lock_wheels", ROOT / "scripts/lock_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lock_wheels(tmp_path, monkeypatch):
    """The script, with PyPI answering that every wheel exists (no network), and a lock of
    three pins in tmp_path."""
    module = load_lock_wheels()
    monkeypatch.setattr(module, "has_wheel", lambda *a: True)
    (tmp_path / "lock.txt").write_text(LOCK)
    return module


def test_lock_wheels_refuses_an_only_name_the_lock_does_not_pin(lock_wheels, tmp_path, capsys):
    """It passed, exit 0, on "0 pins": a typo checked nothing. A name spelled otherwise than
    the lock's, as pip compares names (case, - _ .), is the same package."""
    argv = ["--lock", str(tmp_path / "lock.txt"), "--pythons", "3.11", "--platforms"]
    with pytest.raises(SystemExit) as exit_:
        lock_wheels.main([*argv, "linux-x86_64", "--only", "numpy,nunpy"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    (line,) = err.splitlines()
    assert f"--only 'nunpy' is not pinned in {tmp_path / 'lock.txt'}" in line
    assert "choose from its 3 pins, e.g. numpy" in line
    assert lock_wheels.main([*argv, "linux-x86_64", "--only", "Typing_Extensions"]) == 0
    assert capsys.readouterr().out == "3.11 linux-x86_64: 1 pins, no wheel: none\n"
