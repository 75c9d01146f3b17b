"""constraints.txt, the lock `make` installs with: one pin for every package pyproject.toml asks
for, within the range pyproject.toml allows, on each Python and platform the package supports;
and a .venv that `make` built holds the pinned versions. (Whether each pin has a wheel on each
of them is asked of PyPI by scripts/lock_wheels.py, which needs the network.)"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import refusal, run_script

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lock_wheels", ROOT / "scripts" / "lock_wheels.py")
lock_wheels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_wheels)

LOCK = lock_wheels.lock_lines((ROOT / "constraints.txt").read_text())
# The extras `make` installs (.[dev,ray,render]); `make bench` adds "bench".
MAKE_EXTRAS = ("dev", "ray", "render")


def wanted(extras: tuple[str, ...] | None = None) -> list[Requirement]:
    """What pyproject.toml asks for: its dependencies and those of ``extras`` (None: all)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    lists = [optional[e] for e in (optional if extras is None else extras)]
    return [Requirement(r) for r in [*project["dependencies"], *(r for x in lists for r in x)]]


def test_a_lock_is_read_as_one_pin_per_package_where_its_markers_hold():
    lock = lock_wheels.lock_lines(
        "# made by make lock\nnumpy==2.2.6 ; python_full_version < '3.11'\n    # via dqn\n"
        "numpy==2.4.6 ; python_full_version >= '3.11'\ntqdm==4.70.1\n"
        "colorama==0.4.6 ; sys_platform == 'win32'\n"
    )
    pins = lock_wheels.pins_for(lock, lock_wheels.environment("3.10", "linux-x86_64"))
    assert pins == {"numpy": Version("2.2.6"), "tqdm": Version("4.70.1")}
    pins = lock_wheels.pins_for(lock, lock_wheels.environment("3.12", "windows-amd64"))
    assert pins["numpy"] == Version("2.4.6") and pins["colorama"] == Version("0.4.6")
    env = lock_wheels.environment("3.11", "linux-x86_64")
    with pytest.raises(ValueError, match="pinned twice"):
        lock_wheels.pins_for(lock_wheels.lock_lines("tqdm==4.70.1\nTQDM==4.70.2\n"), env)
    with pytest.raises(ValueError, match="not a pin"):
        lock_wheels.pins_for(lock_wheels.lock_lines("tqdm>=4.70\n"), env)


def test_the_wheel_check_refuses_a_bad_lock_and_a_silent_network_in_one_line(
    tmp_path, monkeypatch, capsys
):
    def refused(*argv: str) -> str:
        with pytest.raises(SystemExit) as stop:
            lock_wheels.main(list(argv))
        assert stop.value.code == 2
        [line] = capsys.readouterr().err.splitlines()  # one line: no usage printed above it
        return line

    assert "cannot read the lock" in refused("--lock", str(tmp_path / "nope.txt"))
    (tmp_path / "ranges.txt").write_text("numpy>=2\n")
    assert "numpy>=2 is not a pin" in refused("--lock", str(tmp_path / "ranges.txt"))
    assert "no platform 'amiga'" in refused("--platforms", "amiga")
    # A bad line only a later target's markers select: a traceback half-way through the list.
    (tmp_path / "later.txt").write_text(
        'foo==1.0 ; python_version == "3.11"\nfoo>=1.1 ; python_version == "3.11"\n'
    )
    assert 'foo>=1.1; python_version == "3.11" is not a pin' in refused(
        "--lock", str(tmp_path / "later.txt"), "--pythons", "3.10,3.11", "--only", "none"
    )
    # Offline, pip finds nothing: one line, not every pin reported missing.
    asked = []
    monkeypatch.setattr(lock_wheels, "has_wheel", lambda *a: asked.append(a) or False)
    assert "is the network down?" in refused()
    assert [a[0] for a in asked] == ["packaging"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["--platforms", "bogus"],
            "no platform 'bogus'; choose from linux-x86_64, linux-aarch64, macos-arm64, "
            "windows-amd64",
        ),
        (["--lock", "/nonexistent.txt"], "cannot read the lock /nonexistent.txt: [Errno 2]"),
        (["--lock", "{ranges}"], "numpy>=1 is not a pin (name==version)"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        # A version pip cannot target finds no wheel on PyPI ("is the network down?"). A lock
        # with no packaging pin, and no package checked: were it not refused, PyPI is not asked.
        (
            ["--pythons", "3.12,abc", "--lock", "{pins}", "--only", "none"],
            "no Python 'abc'; give CPython versions as 3.N",
        ),
    ],
)
def test_an_argument_error_of_the_wheel_check_is_one_line_from_the_command_line(
    argv, fragment, tmp_path
):
    (tmp_path / "ranges.txt").write_text("numpy>=1\n")
    (tmp_path / "pins.txt").write_text("tqdm==4.70.1\n")
    argv = [a.format(ranges=tmp_path / "ranges.txt", pins=tmp_path / "pins.txt") for a in argv]
    line = refusal(run_script("lock_wheels.py", *argv, timeout=60))
    assert line.startswith("lock_wheels.py: error: ") and fragment in line, line
    assert line.endswith("(see lock_wheels.py --help)")


def test_the_wheel_check_lists_the_pins_pypi_has_no_wheel_of(tmp_path, monkeypatch, capsys):
    lock = tmp_path / "lock.txt"
    lock.write_text("packaging==26.4\nnumpy==2.2.6 ; python_full_version < '3.11'\n")
    monkeypatch.setattr(lock_wheels, "has_wheel", lambda name, *_: name != "numpy")
    code = lock_wheels.main(["--lock", str(lock), "--platforms", "windows-amd64"])
    assert code == 1
    assert capsys.readouterr().out.splitlines() == [
        "3.10 windows-amd64: 2 pins, no wheel: numpy==2.2.6",
        "3.11 windows-amd64: 1 pins, no wheel: none",
        "3.12 windows-amd64: 1 pins, no wheel: none",
        "3.13 windows-amd64: 1 pins, no wheel: none",
    ]


@pytest.mark.parametrize("platform", lock_wheels.PLATFORMS)
@pytest.mark.parametrize("python", lock_wheels.PYTHONS)
def test_every_package_pyproject_asks_for_is_pinned_within_its_range(python, platform):
    env = lock_wheels.environment(python, platform)
    pins = lock_wheels.pins_for(LOCK, env)
    for req in filter(lambda r: lock_wheels.holds(r, env), wanted()):
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's "
            f"{req.specifier}: run `make lock`"
        )


def holds() -> list[Requirement]:
    """constraints-holds.txt: the releases `make lock` keeps out of the lock, a range a line."""
    text = (ROOT / "constraints-holds.txt").read_text()
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return [Requirement(line) for line in lines if line]


@pytest.mark.parametrize("platform", lock_wheels.PLATFORMS)
@pytest.mark.parametrize("python", lock_wheels.PYTHONS)
def test_every_pin_a_hold_names_is_inside_it(python, platform):
    # make lock gives uv the holds; a pin moved by hand, or a lock written without them, is out.
    env = lock_wheels.environment(python, platform)
    pins = lock_wheels.pins_for(LOCK, env)
    assert [str(r) for r in holds()] == ["ml-dtypes<0.7"]
    for hold in holds():
        name = canonicalize_name(hold.name)
        assert name in pins and hold.specifier.contains(pins[name]), (
            f"constraints.txt pins {name}=={pins.get(name)}, outside constraints-holds.txt's "
            f"{hold.specifier}: run `make lock`"
        )


def test_a_venv_that_make_built_holds_the_pinned_versions():
    if not (Path(sys.prefix) / ".installed").is_file():
        pytest.skip("not the .venv that `make` built (it leaves .venv/.installed)")
    env = default_environment()
    checked = set()
    for name, version in lock_wheels.pins_for(LOCK, env).items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue  # the bench extra's, which `make` installs only for `make bench`
        # A local label is a build of the pinned release (torch 2.13.0+cpu for 2.13.0).
        assert installed.public == str(version), f"{name} {installed} installed, lock: {version}"
        checked.add(name)
    direct = {canonicalize_name(r.name) for r in wanted(MAKE_EXTRAS) if lock_wheels.holds(r, env)}
    assert direct <= checked, f"installed by make but not found: {direct - checked}"


def test_the_lowest_lock_pins_each_package_at_the_lower_bound_pyproject_gives_it():
    # `make test-lowest` installs constraints-lowest.txt: if a bound in pyproject.toml moves,
    # the versions the suite is run against must move with it, or the range is untested.
    lowest = lock_wheels.pins_for(
        lock_wheels.lock_lines((ROOT / "constraints-lowest.txt").read_text()), default_environment()
    )
    floors = {}
    for req in wanted(MAKE_EXTRAS):
        if not req.specifier or any(s.operator == "==" for s in req.specifier):
            continue  # an exact pin (ruff, ray) is its own floor; a bare extra adds no range
        [bound] = [s for s in req.specifier if s.operator == ">="]  # one lower bound each
        floors[canonicalize_name(req.name)] = Version(bound.version)
    assert floors == lowest
    # A bare name admits every release ever made, tested or not: each package dqn needs has one.
    assert {canonicalize_name(r.name) for r in wanted(())} <= set(floors)


def test_a_venv_that_make_test_lowest_built_holds_the_lowest_pins():
    if not (Path(sys.prefix) / ".installed-lowest").is_file():
        pytest.skip("not the .venv-lowest that `make test-lowest` built")
    lowest = lock_wheels.lock_lines((ROOT / "constraints-lowest.txt").read_text())
    for name, version in lock_wheels.pins_for(lowest, default_environment()).items():
        assert Version(metadata.version(name)) == version, name
