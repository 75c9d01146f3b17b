"""What the README says of the test suite is what the suite holds."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAD_INPUT_FILES = [
    "tests/test_bad_input.py",
    "tests/test_compare_bad_input.py",
    "tests/test_agent_files_bad_input.py",
]


def test_the_readme_s_count_of_bad_input_cases_is_what_pytest_collects():
    # The README had said 275 while the three files held 277: a count written by hand drifts.
    said = re.search(r"with (\d+) bad-input\s+cases", (ROOT / "README.md").read_text())
    assert said is not None
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + BAD_INPUT_FILES,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    count = re.search(r"^(\d+) tests? collected", collected, re.M)
    assert count is not None, collected[-2000:]
    assert int(said.group(1)) == int(count.group(1))
