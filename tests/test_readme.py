"""What the README and the docs say of the test suite is what the suite holds."""

import functools
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAD_INPUT_FILES = [
    "tests/test_bad_input.py",
    "tests/test_compare_bad_input.py",
    "tests/test_agent_files_bad_input.py",
]


@functools.cache
def collected() -> Counter:
    """How many tests pytest collects from each of BAD_INPUT_FILES: one collection for both
    counts below (each starts a pytest that imports the files, TensorFlow with them)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + BAD_INPUT_FILES,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    count = re.search(r"^(\d+) tests? collected", out, re.M)
    assert count is not None, out[-2000:]
    per_file = Counter(line.split("::")[0] for line in out.splitlines() if "::" in line)
    assert per_file.total() == int(count.group(1)), out[-2000:]
    return per_file


def test_the_readme_s_count_of_bad_input_cases_is_what_pytest_collects():
    # The README had said 275 while the three files held 277: a count written by hand drifts.
    said = re.search(r"with (\d+) bad-input\s+cases", (ROOT / "README.md").read_text())
    assert said is not None
    assert int(said.group(1)) == sum(collected()[f] for f in BAD_INPUT_FILES)


def test_reliability_s_count_of_test_bad_input_is_what_pytest_collects():
    # docs/reliability.md said 136 while the file held 144.
    text = (ROOT / "docs" / "reliability.md").read_text()
    said = re.search(r"`tests/test_bad_input.py` \((\d+) cases", text)
    assert said is not None
    assert int(said.group(1)) == collected()[BAD_INPUT_FILES[0]]


def test_install_s_count_of_pins_is_the_lock_s():
    # docs/install.md said 117 pins, 52 with a marker, after mypy's five pins had joined.
    pins = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if re.match(r"[A-Za-z0-9_.-]+==", line)
    ]
    install = (ROOT / "docs" / "install.md").read_text()
    said = re.search(r"(\d+) pins, of which (\d+) carry", install)
    assert said is not None
    assert (int(said.group(1)), int(said.group(2))) == (len(pins), sum(";" in p for p in pins))


def test_the_readme_s_interval_of_progress_lines_is_the_bars():
    from dqn.terminal import LOG_EVERY_SECONDS

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"at most one every {LOG_EVERY_SECONDS:g} s" in readme
