"""Does every pin of constraints.txt have a wheel on each Python and platform dqn supports?

    python scripts/lock_wheels.py [--lock constraints.txt] [--pythons 3.10,3.11,3.12,3.13]
        [--platforms linux-x86_64,linux-aarch64,macos-arm64,windows-amd64] [--only NAME,...]

`make` installs with `pip install -c constraints.txt`, and a pin whose release has no wheel for
a user's Python and platform would make pip build it from source there (or fail). For each
(Python, platform) this takes the pins whose environment markers hold there and asks pip, one
pin at a time, whether PyPI has a wheel of that exact version for it (`pip install --dry-run
--no-deps --only-binary=:all: --python-version X --platform TAG ...`, pip's own configuration
ignored). It prints one line per target and exits 1 if any pin has none; a lock it cannot read,
or a PyPI that answers nothing (offline, pip finds no wheel of anything), is one line, exit 2.
It needs the network and a recent pip: 26.3 judged each release's Requires-Python by
`--python-version`, where 23.2 judged it by the interpreter running pip and so reported wheels
missing that exist.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def _manylinux(arch: str) -> list[str]:
    # Wheels built for glibc 2.17 to 2.39 (Ubuntu 24.04's) all install on a current Linux.
    return [f"manylinux_2_{m}_{arch}" for m in range(39, 16, -1)] + [f"manylinux2014_{arch}"]


def _macos() -> list[str]:
    return [f"macosx_{v}_0_{a}" for v in range(15, 10, -1) for a in ("arm64", "universal2")] + [
        "macosx_10_9_universal2"
    ]


# platform: (pip's --platform tags, the environment markers there)
PLATFORMS = {
    "linux-x86_64": (_manylinux("x86_64"), dict(sys_platform="linux", platform_machine="x86_64")),
    "linux-aarch64": (
        _manylinux("aarch64"),
        dict(sys_platform="linux", platform_machine="aarch64"),
    ),
    "macos-arm64": (_macos(), dict(sys_platform="darwin", platform_machine="arm64")),
    "windows-amd64": (["win_amd64"], dict(sys_platform="win32", platform_machine="AMD64")),
}
_SYSTEM = {"linux": ("Linux", "posix"), "darwin": ("Darwin", "posix"), "win32": ("Windows", "nt")}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2, as dqn.command_line's ``Parser`` says
    it. Not that one: this script runs on any Python with packaging, where dqn need not be
    installed."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def holds(req: Requirement, env: dict[str, str]) -> bool:
    """Whether ``req`` applies in ``env``: it has no marker, or its marker is true there."""
    return req.marker is None or req.marker.evaluate(env)


def lock_lines(text: str) -> list[Requirement]:
    """The pins of a requirements file: `name==version ; marker` lines, comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line]


def environment(python: str, platform: str) -> dict[str, str]:
    """The environment markers of CPython ``python`` ("3.12") on ``platform``."""
    markers = PLATFORMS[platform][1]
    system, os_name = _SYSTEM[markers["sys_platform"]]
    env = dict(default_environment(), **markers, platform_system=system, os_name=os_name)
    env.update(python_version=python, python_full_version=f"{python}.0")
    env.update(implementation_name="cpython", platform_python_implementation="CPython")
    return env


def pins_for(lock: list[Requirement], env: dict[str, str]) -> dict[str, Version]:
    """The version each package is pinned to where ``env``'s markers hold. ValueError if a
    line is not one `==` pin, or a package is pinned twice there."""
    pins: dict[str, Version] = {}
    for req in filter(lambda r: holds(r, env), lock):
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ValueError(f"{req} is not a pin (name==version)")
        name = canonicalize_name(req.name)
        if name in pins:
            raise ValueError(f"{name} is pinned twice for Python {env['python_full_version']}")
        pins[name] = Version(specs[0].version)
    return pins


def has_wheel(name: str, version: Version, python: str, tags: list[str]) -> bool:
    """Whether PyPI has a wheel of name==version for CPython ``python`` on one of ``tags``."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--isolated", "--dry-run"]
    cmd += ["--ignore-installed", "--no-deps", "--only-binary=:all:", "--target", "unused"]
    cmd += ["--index-url", "https://pypi.org/simple", "--python-version", python]
    cmd += [arg for tag in tags for arg in ("--platform", tag)]
    return subprocess.run([*cmd, f"{name}=={version}"], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--pythons", default=",".join(PYTHONS))
    parser.add_argument("--platforms", default=",".join(PLATFORMS))
    parser.add_argument("--only", default="", help="check only these packages (comma-separated)")
    args = parser.parse_args(argv)
    platforms = args.platforms.split(",")
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        parser.error(f"no platform {unknown[0]!r}; choose from {', '.join(PLATFORMS)}")
    only = {canonicalize_name(n): n for n in args.only.split(",") if n}  # as pip compares
    pythons = args.pythons.split(",")
    # A version pip cannot target ("abc", "3") would be asked of PyPI, and its empty answer
    # reported as a network that is down.
    odd = [v for v in pythons if not re.fullmatch(r"3\.\d+", v)]
    if odd:
        parser.error(
            f"no Python {odd[0]!r}; give CPython versions as 3.N, e.g. {','.join(PYTHONS)}"
        )
    first = (pythons[0], platforms[0])
    try:
        lock = lock_lines(args.lock.read_text())
        # Every target's pins read up front: a bad line that only a later target's markers
        # select was a traceback half-way through the listing.
        targets = {
            (python, platform): pins_for(lock, environment(python, platform))
            for python in pythons
            for platform in platforms
        }
    except (OSError, ValueError) as e:  # packaging's InvalidRequirement is a ValueError
        parser.error(f"cannot read the lock {args.lock}: {e}")
    # A name the lock does not pin (a typo) was checked nowhere, and the run passed on 0 pins.
    pinned = sorted({canonicalize_name(r.name) for r in lock})
    if unpinned := [n for n in only if n not in pinned]:
        near = difflib.get_close_matches(unpinned[0], pinned, 3) or pinned[:3]
        choices = f"choose from its {len(pinned)} pins, e.g. {', '.join(near)}"
        parser.error(
            f"--only {only[unpinned[0]]!r} is not pinned in {args.lock}; "
            f"{choices if pinned else 'it pins nothing'}"
        )
    probe = targets[first].get("packaging")
    # Offline, pip finds no wheel of anything: ask first for one that every target has (a pure
    # Python wheel), so that a missing network is not reported as a hundred missing wheels.
    if probe and not has_wheel("packaging", probe, first[0], PLATFORMS[first[1]][0]):
        parser.error(f"pip found no wheel of packaging=={probe} on PyPI: is the network down?")
    missing_anywhere = False
    with ThreadPoolExecutor(8) as pool:  # pip waits on the network, not the CPU
        for python in pythons:
            for platform in platforms:
                pins = targets[python, platform]
                pins = {n: v for n, v in pins.items() if not only or n in only}
                tags = PLATFORMS[platform][0]
                names, versions = list(pins), list(pins.values())
                found = pool.map(has_wheel, names, versions, repeat(python), repeat(tags))
                missing = [f"{n}=={v}" for n, v, ok in zip(names, versions, found) if not ok]
                missing_anywhere |= bool(missing)
                listed = ", ".join(missing) or "none"
                print(f"{python} {platform}: {len(pins)} pins, no wheel: {listed}", flush=True)
    return 1 if missing_anywhere else 0


if __name__ == "__main__":
    sys.exit(main())
