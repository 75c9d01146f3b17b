"""dqn ships py.typed: a user's type checker reads its annotations. mypy checks the README's
Python examples against them, and a control file with known mistakes shows that it read dqn
(a module it could not find or analyse would be Any, and every call would pass)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mypy", reason="mypy is in the dev extra")

# Each mistake a user could make, and the line mypy must answer it with.
CONTROL = """
from dqn import DQNConfig, train
from dqn.evaluation import evaluate

result = train(DQNConfig(), progress=False)
result.final_eval_mean.upper()
evaluate(result.agent)
evaluate("CartPole-v1", result.agent, 10, 0)
"""
CONTROL_ERRORS = (
    '"float" has no attribute "upper"',  # TrainResult's, through dqn's lazy names
    'Missing positional arguments "env", "episodes", "seed" in call to "evaluate"',
    'Argument 1 to "evaluate" has incompatible type "str"; expected "Policy"',
    'Argument 2 to "evaluate" has incompatible type "DQNAgent"; expected "Env[Any, Any]"',
)


def readme_examples() -> list[str]:
    """The README's Python blocks that use dqn."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b for b in blocks if re.search(r"^(from|import) dqn", b, re.M)]


def mypy(files: list[Path], cache: Path) -> subprocess.CompletedProcess:
    # dqn from this checkout, however it was installed (an editable install's finder is not
    # a folder mypy searches).
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    # --follow-imports=silent: dqn's own modules are read for their types, not judged (a user's
    # checker reports nothing inside an installed package either).
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary"]
    command += ["--follow-imports=silent"]
    command += ["--python-executable", sys.executable, *map(str, files)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def test_dqn_ships_the_py_typed_marker():
    assert (ROOT / "dqn" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    data = pyproject.split("[tool.setuptools.package-data]")[1].split("\n[")[0]
    assert 'dqn = ["py.typed"]' in data.splitlines()


def test_the_readme_examples_type_check_and_a_wrong_call_does_not(tmp_path):
    examples = readme_examples()
    assert len(examples) >= 3  # the quick use, the callbacks, the population
    files = []
    for i, text in enumerate(examples):
        files.append(tmp_path / f"readme_{i}.py")
        files[-1].write_text(text)
    (tmp_path / "control.py").write_text(CONTROL)
    done = mypy([*files, tmp_path / "control.py"], tmp_path / "cache")
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith(str(tmp_path / "readme_"))] == [], (
        done.stdout + done.stderr
    )
    wrong = [line for line in lines if line.startswith(str(tmp_path / "control.py"))]
    for message in CONTROL_ERRORS:
        assert any(message in line for line in wrong), done.stdout + done.stderr
    assert len(wrong) == len(CONTROL_ERRORS), done.stdout
