"""Imports point one way, read from the source with ``ast`` (nothing is imported).

Every import counts: at module level, inside functions, under ``if``. A string constant that
names a ``dqn`` module exactly (``importlib.import_module("dqn.loop")``, the lazy table of
``dqn/__init__.py``) counts as an import of it. Importing ``dqn.x`` also runs the package
``dqn/__init__.py``; that implicit import is not an edge (the package imports lazily).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dqn"

# Helpers are read by all and import only helpers. A module may import its own layer, a lower
# one or a helper, never a higher layer.
HELPERS = {
    "config",
    "errors",
    "envs",
    "envstate",
    "finite",
    "io",
    "lockstep",
    "runtime",
    "terminal",
    "yaml_files",
}
LAYERS = {
    1: {"losses", "networks", "activations", "diagnostics", "nstep", "step_metrics", "replay"}
    | {"fastcall", "backprop"},  # math and replay; the numpy backprop lab
    2: {"learner", "tf_learner", "numpy_learner", "members", "numpy_population", "tf_population"}
    | {"learner_process"},
    3: {"agent", "agent_files", "agent_io", "evaluation", "render"},
    4: {"loop", "run_log", "run_state", "checkpoint", "divergence"}
    | {"population", "population_loop", "population_progress", "population_files"}
    | {"member_agent"},
    5: {"compare", "study_runs", "local_backend", "ray_backend", "report", "stats"},
    6: {"cli", "command_line", "export", "__init__"},  # command-line faces; the lazy public API
}
LAYER_NAMES = {0: "helpers", 1: "math", 2: "learners", 3: "agent", 4: "run", 5: "study", 6: "face"}
TF = {"tensorflow", "keras"}
# The command line reads and checks a checkpoint with these before it imports TensorFlow.
TF_FREE = {"dqn.agent_files", "dqn.checkpoint", "dqn.run_state", "dqn.render"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports: ``dqn`` modules by full name, others by top package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # ``from dqn import losses`` imports the module dqn.losses
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Constant) and node.value in MODULES:
            found.add(node.value)
    return {m if m in MODULES else m.split(".")[0] for m in found}


GRAPH = {name: imports_of(name) for name in MODULES}


def internal(name: str) -> set[str]:
    return {m for m in GRAPH[name] if m in MODULES and m != name}


def layer(name: str) -> int:
    short = name.split(".")[1] if "." in name else "__init__"
    if short in HELPERS:
        return 0
    return next((n for n, members in LAYERS.items() if short in members), -1)


def test_every_module_has_a_layer():
    assert [name for name in MODULES if layer(name) < 0] == []


def test_no_layer_imports_a_higher_one():
    wrong = [
        f"{a} ({LAYER_NAMES[layer(a)]}) imports {b} ({LAYER_NAMES[layer(b)]})"
        for a in MODULES
        for b in sorted(internal(a))
        if layer(b) > layer(a)
    ]
    assert wrong == []


def test_there_are_no_import_cycles():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for other in sorted(internal(name)):
            cycle = visit(other, [*path, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    cycles = {" -> ".join(c) for c in (visit(name, []) for name in MODULES) if c}
    assert sorted(cycles) == []


def test_the_backprop_lab_is_numpy_only():
    # Its command shares the other commands' output handling (`dqn-backprop | head`), a helper
    # that imports neither TensorFlow nor the rest of the package.
    allowed = {"dqn.backprop.cli": {"dqn.terminal"}}
    assert internal("dqn.terminal") == set() and GRAPH["dqn.terminal"] & TF == set()
    for name in MODULES:
        if name.startswith("dqn.backprop"):
            outside = {m for m in GRAPH[name] if m.startswith("dqn") and m in MODULES}
            outside -= allowed.get(name, set())
            assert {m for m in outside if not m.startswith("dqn.backprop")} == set(), name
            assert GRAPH[name] & TF == set(), name


def test_no_torch_or_stable_baselines3_in_the_package():
    for name in MODULES:
        assert GRAPH[name] & {"torch", "stable_baselines3"} == set(), name


def test_what_the_command_line_checks_before_tensorflow_never_imports_it():
    reached, todo = set(), list(TF_FREE)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(internal(name))
    assert {name: sorted(GRAPH[name] & TF) for name in reached if GRAPH[name] & TF} == {}
    assert "dqn.agent" not in reached


def test_the_graph_is_read_as_meant():
    # The parser must see what the checks rely on: a ``from dqn import module`` import, a
    # function-level import, the lazy table of the package, and third-party packages.
    assert "dqn.losses" in GRAPH["dqn.agent"]
    assert "dqn.loop" in GRAPH["dqn.cli"]  # imported inside a function
    assert {"dqn.agent", "dqn.config", "dqn.loop"} <= GRAPH["dqn"]
    assert "dqn.backprop.demos" in GRAPH["dqn.backprop.cli"]
    assert "tensorflow" in GRAPH["dqn.agent"] and "numpy" in GRAPH["dqn.backprop.layers"]
    assert "dqn.agent_files" in GRAPH["dqn.agent"] and "dqn.agent_files" in GRAPH["dqn.run_state"]
