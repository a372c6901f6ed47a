"""Layers only point down, and no module imports itself back through others.

The layers, lowest first (CONTRIBUTING.md): ``nero`` <- the shared ``tasks`` modules
(``tasks.errors``, ``tasks.files``, ``tasks.distributed``) <- ``tasks.experiments`` <-
``tasks.runner`` <- ``tasks.analysis`` and ``hydra_plugins`` (side by side: neither imports the
other) <- ``scripts``. The graph is read from the source with ``ast``, imports inside functions
included: a lazy import is still a dependency, and a cycle held together by one still breaks
when a module is loaded first from the other end.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("nero", "tasks", "hydra_plugins", "scripts")
# (layer, group): a module may import a lower layer, or its own group; never a sibling group.
LAYERS = {"nero": (0, "nero"), "tasks": (1, "tasks"), "tasks.experiments": (2, "experiments"),
          "tasks.runner": (3, "runner"), "tasks.analysis": (4, "analysis"),
          "hydra_plugins": (4, "hydra_plugins"), "scripts": (5, "scripts")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import tasks.runner.cli`` -> the module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def layer(name: str) -> tuple[int, str]:
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def upward(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in sorted(edges.items()):
        for b in sorted(targets):
            (la, ga), (lb, gb) = layer(a), layer(b)
            if lb > la or (lb == la and ga != gb):
                bad.append(f"{a} imports {b}")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions_and_relative_ones():
    edges = graph()
    # scripts/aggregate.py: a top-level absolute import; tasks/runner/loop.py: relative ones
    assert "tasks.analysis.cli" in edges["scripts.aggregate"]
    assert {"tasks.runner.checkpoints", "tasks.runner.records"} <= edges["tasks.runner.loop"]
    # grid.py imports the preflight inside a method
    assert "tasks.runner.preflight" in edges["hydra_plugins.nero_sweeper.grid"]
    assert layer("tasks.errors") == (1, "tasks") and layer("tasks.runner.cli") == (3, "runner")


def test_the_checks_catch_a_cycle_and_an_upward_import():
    edges = {"tasks.runner.a": {"tasks.runner.b"}, "tasks.runner.b": {"tasks.runner.a"},
             "tasks.experiments.x": {"tasks.runner.a"}, "tasks.analysis.y": {"hydra_plugins.z"},
             "hydra_plugins.z": {"tasks.runner.a"}}
    assert cycles(edges) == [["tasks.runner.a", "tasks.runner.b"]]
    assert upward(edges) == ["tasks.analysis.y imports hydra_plugins.z",
                             "tasks.experiments.x imports tasks.runner.a"]


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_layers_only_point_down():
    assert upward(graph()) == []


# -- torch is imported where it is needed ------------------------------------------------------
# Importing torch takes seconds: a mistyped command line is refused before it (the config, the
# run's keys, the task's schema, the lr and seed need none), and so is the aggregation of records
# (only §4's memory claim builds models, and imports torch there).
REPORT_TORCH = ("import runpy, sys\n"
                "sys.argv = ['scripts/train.py', *sys.argv[1:]]\n"
                "try:\n    runpy.run_path('scripts/train.py', run_name='__main__')\n"
                "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")


def train_reporting_torch(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REPORT_TORCH, "task=mnist_mlp", "scale=smoke",
                           "logger=none", f"out_dir={tmp_path}", *overrides], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WANDB_MODE": "disabled"})


@pytest.mark.parametrize("bad", ["optimizer.lr=-1", "task.epochs=0", "seed=1.5", "precision=fp8",
                                 "+task.epoch=5", "task=nope"])
def test_a_bad_command_line_is_refused_before_torch_is_imported(tmp_path, bad):
    out = train_reporting_torch(tmp_path, bad)
    assert out.stdout.splitlines()[-1:] == ["exit 2 False"], out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1


def test_a_good_command_line_does_import_torch(tmp_path):
    """The probe above can fail: a run that gets past the checks imports torch."""
    out = train_reporting_torch(tmp_path, "optimizer.momentum=abc", "optimizer=sgd")
    assert out.stdout.splitlines()[-1:] == ["exit 2 True"], out.stdout + out.stderr


def test_the_aggregator_imports_no_torch():
    out = subprocess.run([sys.executable, "-c", "import sys, tasks.analysis.cli; "
                          "print('torch' in sys.modules)"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "False", out.stderr
