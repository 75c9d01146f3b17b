"""`make train` and `make test` build .venv from nothing but a python3: what they do when that
python, or a .venv an earlier try left, cannot be used.

Each test runs the Makefile's own recipe in a folder of its own, with fake interpreters: shell
scripts that answer the recipe's questions (`-c` the version check, `-V`, `-m venv`, `-m pip`)
as the case needs, and write what they were asked to a log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")

# A venv's python that works: every call is logged and succeeds.
GOOD_VENV_PYTHON = '#!/bin/sh\necho "venv-python $*" >> "$(dirname "$0")/../../log"\n'


def executable(path: Path, script: str) -> Path:
    """A shell script at ``path`` (its folders made), ready to run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)
    return path


def interpreter(path: Path, version: str, venv: str = "good") -> Path:
    """A fake python of ``version``; ``-m venv DIR`` makes a venv whose python works ("good"),
    or leaves one that cannot run pip and fails, as Debian's python without python3-venv does
    ("half")."""
    ok = 0 if tuple(int(p) for p in version.split(".")[:2]) >= (3, 10) else 1
    made = GOOD_VENV_PYTHON if venv == "good" else "#!/bin/sh\nexit 1\n"
    return executable(
        path,
        "#!/bin/sh\n"
        'echo "python $*" >> log\n'
        'case "$1" in\n'
        # -c: the venv check (a venv's python: yes) or the version check
        f'  -c) case "$2" in *base_prefix*) exit 0;; *) exit {ok};; esac;;\n'
        f"  -V) echo 'Python {version}';;\n"
        '  -m) [ "$2" = venv ] || exit 0\n'
        '      mkdir -p "$3/bin"; touch "$3/pyvenv.cfg"\n'
        f"      cat > \"$3/bin/python\" <<'END'\n{made}END\n"
        '      chmod +x "$3/bin/python"\n'
        f"      exit {0 if venv == 'good' else 1};;\n"
        "esac\n",
    )


def make(folder: Path, python: str, *options: str) -> subprocess.CompletedProcess:
    # As a top-level make, also when the suite itself runs under `make test` (whose MAKELEVEL
    # and MAKEFLAGS would make this one a sub-make, with "make[1]:" on its lines).
    outer = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    return subprocess.run(
        ["make", *options, ".venv/.installed", f"PYTHON={python}"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "constraints.txt").write_text("")
    return tmp_path


def log(project: Path) -> list[str]:
    path = project / "log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_venv_without_pip_left_by_a_failed_try_is_made_again(project):
    executable(
        project / ".venv" / "bin" / "python", "#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n"
    )
    proc = make(project, str(interpreter(project / "py", "3.11.7")))
    assert proc.returncode == 0, proc.stderr
    calls = log(project)
    assert "python -m venv .venv" in calls
    assert any(
        c.startswith("venv-python -m pip install --quiet -c constraints.txt -e") for c in calls
    )
    assert (project / ".venv" / ".installed").is_file()


def test_a_venv_whose_pip_imports_but_does_not_run_is_made_again(project):
    # Ctrl-C while pip upgraded itself left a pip package that imports but cannot run ("No
    # module named 'pip._internal.utils'"), on which every later `make` failed the same way.
    broken = (
        "#!/bin/sh\n"
        'echo "broken-python $*" >> "$(dirname "$0")/../../log"\n'
        '[ "$1" = -m ] && { echo "No module named pip._internal.utils" >&2; exit 1; }\n'
        "exit 0\n"
    )
    executable(project / ".venv" / "bin" / "python", broken)
    (project / ".venv" / "pyvenv.cfg").write_text("")
    proc = make(project, str(interpreter(project / "py", "3.11.7")))
    assert proc.returncode == 0, proc.stderr
    assert "python -m venv .venv" in log(project)
    assert (project / ".venv" / ".installed").is_file()


def test_an_interpreter_that_does_not_run_is_named_as_such_not_as_too_old(project):
    # A pyenv shim of a version that is not active: "needs Python >= 3.10 and 'python3.12' is
    # pyenv: python3.12: command not found", with the shim's eight lines of advice after it.
    executable(
        project / "shims" / "python3.12",
        "#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\necho more >&2\nexit 127\n",
    )
    proc = make(project, str(project / "shims" / "python3.12"))
    assert proc.returncode == 2
    [line] = [x for x in proc.stderr.splitlines() if not x.startswith("make: ***")]
    assert line.startswith(f"make: '{project / 'shims' / 'python3.12'}' does not run (pyenv: ")
    assert "too old" not in line and "needs Python" not in line
    assert not (project / ".venv").exists()


@pytest.mark.parametrize("name", ["a$b", "b`id`", 'q"x', "s'q", "back\\slash"])
def test_the_stamp_holds_a_folder_whose_name_the_shell_would_read(tmp_path, name):
    # `echo "$(CURDIR)"` let the shell expand $b and run `id`: the stamp never matched the
    # folder, and every make made .venv again (a quote broke the recipe after the install).
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    (folder / "pyproject.toml").write_text("")
    (folder / "constraints.txt").write_text("")
    python = str(interpreter(tmp_path / "py", "3.11.7"))
    proc = make(folder, python)
    assert proc.returncode == 0, proc.stderr
    assert (folder / ".venv" / ".installed").read_text() == f"{folder.resolve()}\n"
    assert "is up to date" in make(folder, python).stdout


def test_the_install_takes_the_lock_and_a_new_lock_installs_again(project):
    python = str(interpreter(project / "py", "3.11.7"))
    assert make(project, python).returncode == 0
    installs = [c for c in log(project) if "pip install --quiet -c constraints.txt -e" in c]
    assert installs == [
        "venv-python -m pip install --quiet -c constraints.txt -e .[dev,ray,render]"
    ]
    assert "is up to date" in make(project, python).stdout
    lock = project / "constraints.txt"  # `make lock` wrote it again
    later = (project / ".venv" / ".installed").stat().st_mtime + 10
    os.utime(lock, (later, later))
    assert make(project, python).returncode == 0
    assert sum("-c constraints.txt" in c for c in log(project)) == 2


def test_a_venv_without_its_pyvenv_cfg_is_made_again_not_installed_into(project):
    """An interrupted `rm -rf .venv` can leave bin/python without pyvenv.cfg: that python is
    the base interpreter itself (pip runs in it), and everything was installed into it."""
    # Not a venv (sys.prefix == sys.base_prefix: -c exits 1), but pip works in it.
    base = '#!/bin/sh\necho "base-python $*" >> log\n[ "$1" = -c ] && exit 1\nexit 0\n'
    executable(project / ".venv" / "bin" / "python", base)
    proc = make(project, str(interpreter(project / "py", "3.11.7")))
    assert proc.returncode == 0, proc.stderr
    calls = log(project)
    assert "python -m venv .venv" in calls
    assert not any(c.startswith("base-python -m pip") for c in calls), calls


@pytest.mark.parametrize("gone", ["bin/python", "pyvenv.cfg"])
def test_a_venv_installed_once_that_lost_its_python_or_pyvenv_cfg_is_made_again(project, gone):
    """The stamp said such a .venv was up to date, so `make train` failed on it every time
    (".venv/bin/dqn-train: No such file or directory", "No module named 'dqn'")."""
    python = str(interpreter(project / "py", "3.11.7"))
    assert make(project, python).returncode == 0
    assert "is up to date" in make(project, python).stdout
    (project / ".venv" / gone).unlink()
    proc = make(project, python)
    assert proc.returncode == 0, proc.stderr
    assert "make: .venv has no bin/python or pyvenv.cfg: making it again" in proc.stdout
    assert log(project).count("python -m venv .venv") == 2
    assert "is up to date" in make(project, python).stdout


def test_a_bare_make_lists_the_targets_and_installs_nothing(project):
    outer = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    done = subprocess.run(["make"], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("make train ")
    assert not (project / ".venv").exists()


def test_a_venv_that_fails_half_way_is_removed_so_the_next_try_starts_clean(project):
    proc = make(project, str(interpreter(project / "py", "3.11.7", venv="half")))
    assert proc.returncode != 0
    assert not (project / ".venv").exists()


def test_a_python_older_than_3_10_is_named_in_one_line_before_a_venv_is_made(project):
    proc = make(project, str(interpreter(project / "py", "3.9.2")))
    assert proc.returncode == 2
    [line] = [x for x in proc.stderr.splitlines() if not x.startswith("make: ***")]
    assert "needs Python >= 3.10" in line and "is Python 3.9.2" in line
    assert "PYTHON=python3.11" in line
    assert not (project / ".venv").exists() and "python -m venv .venv" not in log(project)


def test_a_python_that_is_not_there_is_named(project):
    proc = make(project, "python3-that-is-not-installed")
    assert proc.returncode == 2
    assert "no 'python3-that-is-not-installed' on PATH" in proc.stderr


def test_a_venv_of_an_old_python_is_kept_and_named_with_the_cure(project):
    old = interpreter(project / ".venv" / "bin" / "python", "3.9.2")
    proc = make(project, str(interpreter(project / "py", "3.11.7")))
    assert proc.returncode == 2
    assert ".venv holds Python 3.9.2" in proc.stderr and "make clean-venv" in proc.stderr
    assert old.is_file()  # the user's to remove: it may hold more than dqn
    assert not any("pip install" in c for c in log(project))


def test_a_venv_made_in_another_folder_is_made_again_and_an_older_stamp_is_kept(tmp_path):
    """A clone moved or renamed: its .venv's scripts still start the old folder's python. The
    stamp records the folder .venv was made in; an empty one (an older Makefile's) is kept."""
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(ROOT / "Makefile", first / "Makefile")
    (first / "pyproject.toml").write_text("")
    (first / "constraints.txt").write_text("")
    python = str(interpreter(tmp_path / "py", "3.11.7"))
    assert make(first, python).returncode == 0
    assert (first / ".venv" / ".installed").read_text().strip() == str(first.resolve())

    moved = shutil.move(first, tmp_path / "moved")
    proc = make(moved, python, "-n")  # a dry run changes nothing, and says what it would do
    assert proc.returncode == 0 and "rm -rf .venv" in proc.stdout
    assert (moved / ".venv" / ".installed").read_text().strip() == str(first.resolve())
    proc = make(moved, python)
    assert proc.returncode == 0, proc.stderr
    assert f"make: .venv was made in {first.resolve()}, not in {moved.resolve()}" in proc.stdout
    assert log(moved).count("python -m venv .venv") == 2
    assert (moved / ".venv" / ".installed").read_text().strip() == str(moved.resolve())

    (moved / ".venv" / ".installed").write_text("")  # as `touch` left it
    proc = make(moved, python)
    assert proc.returncode == 0 and "made in" not in proc.stdout
    assert "is up to date" in proc.stdout and log(moved).count("python -m venv .venv") == 2


def make_test_lowest(project: Path, python: Path) -> subprocess.CompletedProcess:
    (project / "constraints-lowest.txt").write_text("")
    outer = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    return subprocess.run(
        ["make", "test-lowest", f"PYTHON={python}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_test_lowest_installs_the_lowest_pins_into_a_venv_of_its_own(project):
    proc = make_test_lowest(project, interpreter(project / "py", "3.11.7"))
    assert proc.returncode == 0, proc.stderr
    calls = log(project)
    assert "python -m venv .venv-lowest" in calls
    installs = [c for c in calls if c.startswith("venv-python -m pip install --quiet -c")]
    assert installs == [
        "venv-python -m pip install --quiet -c constraints-lowest.txt -e .[dev,ray,render]"
    ]
    [suite] = [c for c in calls if c.startswith("venv-python -m pytest")]
    assert "--ignore tests/test_bench.py" in suite  # the benchmarks run at the lock's versions
    assert (project / ".venv-lowest" / ".installed-lowest").is_file()
    assert not (project / ".venv").exists()  # make's own .venv is left alone


def test_make_test_lowest_names_a_python_tensorflow_2_16_has_no_wheel_for(project):
    python = executable(
        project / "py",
        '#!/bin/sh\necho "python $*" >> log\n'
        'case "$1" in -c) exit 1;; -V) echo "Python 3.13.1";; esac\n',
    )
    proc = make_test_lowest(project, python)
    assert proc.returncode == 2
    [line] = [x for x in proc.stderr.splitlines() if not x.startswith("make: ***")]
    assert "needs Python 3.10 to 3.12" in line and "is Python 3.13.1" in line
    assert "PYTHON=python3.12" in line
    assert not (project / ".venv-lowest").exists() and "python -m venv .venv-lowest" not in log(
        project
    )
