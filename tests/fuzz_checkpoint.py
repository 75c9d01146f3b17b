"""Mutate a checkpoint's files at random, re-sign its manifest, and resume from it.

    python -m tests.fuzz_checkpoint [--cases 500] [--seed 0] [--population | --envs 2]

Trains a tiny CartPole run (numpy learner; with ``--population``, a population of two members)
into a temporary folder, then, case by case, copies it, changes one file of its newest
checkpoint or its run's ``config.yaml`` or ``metrics.csv`` (and a population's own
``population.json`` and ``population-step.json``): a JSON or YAML value or key, an ``.npz``
array's dtype, shape, values or presence, a network file's config or weights, a CSV cell, or
its raw bytes. It re-signs the checkpoints' manifests, as a crafted folder would, and calls
``DQNAgent.load`` (where an agent's files changed) and ``dqn.loop.resume`` (or
``dqn.population.resume_population``).

Every outcome must be a resumed run or one of dqn's one-line errors (a ``DQNError``). An
exception raised in an env's own code (``dqn.errors.raised_by_env``: a CartPole ``state`` of
two numbers fails in CartPole's step) is the env's, as the command line treats it, and is
counted apart. Any other exception is printed once per (type, function), with the case that
raised it, and the script exits 1. Not part of the test suite: each case found here has its own
test (``tests/test_bad_input.py``, ``tests/test_reliability.py``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import random
import shutil
import tempfile
import traceback
import warnings
import zipfile
from pathlib import Path

import numpy as np
import yaml

# Values a mutation puts in place of a JSON or YAML leaf: each kind, and the edges of each.
VALUES = [None, True, False, -1, 0, 1, 3, 2**70, -(2**63), 1.5, -0.0, float("nan"), float("inf")]
VALUES += ["", "x", "PCG64", "MT19937", [], {}, [1, 2], {"a": 1}, [[1]], 300, 10**12]


def nodes(tree, path=()):
    """Every (path, node) of a JSON-like tree, the root first."""
    yield path, tree
    if isinstance(tree, (dict, list)):
        for key, value in tree.items() if isinstance(tree, dict) else enumerate(tree):
            yield from nodes(value, (*path, key))


def mutate_tree(tree, rng: random.Random):
    """``tree`` with one node replaced, removed, shifted or joined by a new key."""
    path, node = rng.choice(list(nodes(tree)))
    if not path:
        return copy.deepcopy(rng.choice(VALUES)) if rng.random() < 0.1 else tree
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    last, roll = path[-1], rng.random()
    if roll < 0.3:
        del parent[last]
    elif roll < 0.45 and isinstance(node, (int, float)) and not isinstance(node, bool):
        parent[last] = rng.choice([node + 1, node - 1, node * 2, -node, node * 1e6])
    elif roll < 0.5 and isinstance(parent, dict):
        parent[f"extra_{rng.randrange(10)}"] = copy.deepcopy(rng.choice(VALUES))
    else:
        parent[last] = copy.deepcopy(rng.choice(VALUES))
    return tree


def mutate_json(path: Path, rng: random.Random) -> None:
    tree = json.loads(path.read_text())
    for _ in range(rng.choice([1, 1, 2, 3])):
        tree = mutate_tree(tree, rng)
    path.write_text(json.dumps(tree))


def mutate_yaml(path: Path, rng: random.Random) -> None:
    path.write_text(yaml.safe_dump(mutate_tree(yaml.safe_load(path.read_text()), rng)))


def mutate_npz(path: Path, rng: random.Random) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = rng.choice(sorted(arrays))
    array, roll = arrays[key], rng.randrange(9)
    if roll == 0:
        del arrays[key]
    elif roll == 1:
        kinds = [np.int8, np.float16, np.float64, np.int64, np.complex64, np.bool_, np.uint32]
        arrays[key] = np.array(5) if array.dtype.kind == "U" else array.astype(rng.choice(kinds))
    elif roll == 2:
        arrays[key] = array[: max(0, len(array) - rng.randint(1, 3))] if array.ndim else array[None]
    elif roll == 3:
        arrays[key] = array[..., None] if array.ndim else np.array([array, array])
    elif roll == 4 and array.dtype.kind == "f" and array.size:
        array = array.copy()
        array.flat[rng.randrange(array.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e30])
        arrays[key] = array
    elif roll == 5 and array.dtype.kind in "iu" and array.size:
        array = array.copy()
        array.flat[rng.randrange(array.size)] = rng.choice([-1, 2**31 - 1, 0, 7])
        arrays[key] = array
    elif roll == 6:
        arrays["extra"] = np.zeros(3)
    elif roll == 7 and array.dtype.kind == "U" and str(array).startswith("{"):
        arrays[key] = np.array(json.dumps(mutate_tree(json.loads(str(array)), rng)))
    elif array.size:
        arrays[key] = np.zeros((0, *array.shape[1:]), array.dtype)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def mutate_keras(path: Path, rng: random.Random) -> None:
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    name = rng.choice(sorted(files))
    if name.endswith(".json"):
        files[name] = json.dumps(mutate_tree(json.loads(files[name]), rng)).encode()
    else:
        data = bytearray(files[name])
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        files[name] = bytes(data)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def mutate_csv(path: Path, rng: random.Random) -> None:
    lines, roll = path.read_text().splitlines(True), rng.randrange(4)
    if roll == 0 and lines:
        del lines[rng.randrange(len(lines))]
    elif roll == 1 and lines:
        i = rng.randrange(len(lines))
        cells = lines[i].rstrip("\n").split(",")
        cells[rng.randrange(len(cells))] = rng.choice(["nan", "", "x", "1e400", "-1", "3"])
        lines[i] = ",".join(cells) + "\n"
    elif roll == 2 and lines:
        lines.append(lines[-1])
    else:
        lines = lines[: rng.randrange(len(lines) + 1)]
    path.write_text("".join(lines))


def mutate_bytes(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    if data and rng.random() < 0.5:
        data = data[: rng.randrange(len(data))]
    for _ in range(rng.randint(1, 8) if data else 0):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))


BY_SUFFIX = {
    ".json": mutate_json,
    ".yaml": mutate_yaml,
    ".npz": mutate_npz,
    ".keras": mutate_keras,
    ".csv": mutate_csv,
}


TINY = dict(
    total_env_steps=600,
    learning_starts_env_steps=100,
    train_every_env_steps=50,
    gradient_steps_per_train=4,
    target_update_every_grad_steps=4,
    eval_every_env_steps=300,
    eval_episodes=2,
    final_eval_episodes=2,
    checkpoint_every_env_steps=300,
    hidden_sizes=[8],
    buffer_size=1000,
    batch_size=8,
    n_step=3,
    learner="numpy",
)


def as_if_killed_after_its_first_checkpoint(run: Path) -> None:
    """A finished run as if killed after its first checkpoint (step 300 of 600, or the first
    loop step past it where several envs step at once)."""
    from dqn.agent_files import list_checkpoints

    for newer in list_checkpoints(run)[:-1]:  # newest first
        shutil.rmtree(newer)
    (run / "summary.json").unlink()


def tiny_run(folder: Path, envs: int = 1) -> tuple[Path, list[Path]]:
    """A CartPole run (of ``envs`` envs) stopped after its first checkpoint, and its folder."""
    from dqn import DQNConfig, train

    config = DQNConfig(**{**TINY, "num_envs": envs})
    run = train(config, run_dir=folder / "run", progress=False, log_tensorboard=False)
    as_if_killed_after_its_first_checkpoint(run.run_dir)
    return run.run_dir, [run.run_dir]


def tiny_population(folder: Path) -> tuple[Path, list[Path]]:
    """A population of two members (huber and l2) stopped after its first checkpoint."""
    from dqn import DQNConfig, train_population
    from dqn.population_files import write_step_marker

    out = folder / "population"
    members = [({"loss": "huber"}, 0), ({"loss": "l2"}, 1)]
    results = train_population(
        DQNConfig(**TINY), members, out_dir=out, progress=False, log_tensorboard=False
    )
    for member in results:
        as_if_killed_after_its_first_checkpoint(member.run_dir)
    write_step_marker(out, 300, [])
    return out, [m.run_dir for m in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--population", action="store_true", help="a population's, not a run's")
    parser.add_argument("--envs", type=int, default=1, help="a run's num_envs (default 1)")
    args = parser.parse_args(argv)

    from dqn import DQNAgent
    from dqn.agent_files import checkpoint_step, list_checkpoints
    from dqn.checkpoint import write_manifest
    from dqn.errors import DQNError, raised_by_env
    from dqn.loop import resume
    from dqn.population import resume_population

    rng = random.Random(args.seed)
    counts = {"resumed": 0, "refused": 0, "env's": 0, "other": 0}
    seen: set[tuple[str, str, str]] = set()
    with tempfile.TemporaryDirectory() as scratch:
        if args.population:
            base, base_runs = tiny_population(Path(scratch))
        else:
            base, base_runs = tiny_run(Path(scratch), args.envs)
        for case in range(args.cases):
            folder = Path(scratch) / "case"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(base, folder)
            runs = [folder / r.relative_to(base) for r in base_runs]
            checkpoints = [list_checkpoints(r)[0] for r in runs]
            files = [
                p
                for path in (*checkpoints, *(r / n for r in runs for n in RUN_FILES))
                for p in ([path] if path.is_file() else path.rglob("*"))
                if p.is_file() and p.name != "manifest.json"
            ]
            if args.population:  # the population's own files, as often as a member's
                files += [folder / "population.json", folder / "population-step.json"] * 4
            target = rng.choice(files)
            mutate = mutate_bytes if rng.random() < 0.15 else BY_SUFFIX[target.suffix]
            mutate(target, rng)
            for checkpoint in checkpoints:
                write_manifest(checkpoint, checkpoint_step(checkpoint))
            what = f"case {case}: {mutate.__name__} of {target.relative_to(folder)}"
            go_on = resume_population if args.population else resume
            calls = [
                ("resume", functools.partial(go_on, folder, progress=False, log_tensorboard=False))
            ]
            if "agent" in target.parts:
                calls.insert(0, ("load", functools.partial(DQNAgent.load, target.parent)))
            for name, call in calls:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        call()
                    counts["resumed"] += name == "resume"
                except DQNError:
                    counts["refused"] += 1
                except Exception as exc:
                    if raised_by_env(exc):
                        counts["env's"] += 1
                        continue
                    counts["other"] += 1
                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    if (key := (name, type(exc).__name__, where.name)) not in seen:
                        seen.add(key)
                        print(f"{what}: {name} raised {type(exc).__name__}: {exc!s:.200}")
                        print(f"    at {where.filename}:{where.lineno} ({where.name})")
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"({args.cases} cases)")
    return 1 if counts["other"] else 0


# A run's own files beside its checkpoints that a resume reads.
RUN_FILES = ("config.yaml", "metrics.csv")


if __name__ == "__main__":
    raise SystemExit(main())
