"""The package's shape: style, import structure, what imports TensorFlow, one table of names per choice."""

import ast
import inspect
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT, python_subprocess

PACKAGE = os.path.join(ROOT, "keras_colour")


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command, ROOT], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _package_imports():
    """{module: set of keras_colour modules it imports}, from the source (every import, at any depth)."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                modules[_module_name(path)] = ast.parse(open(path, encoding="utf-8").read())
    graph = {}
    for module, tree in modules.items():
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def test_no_import_cycles_among_package_modules():
    graph = _package_imports()
    # A package's __init__ re-exporting its own submodules is not a cycle of logic: leave parents out.
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(target) :] + [target]))
            if target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_figures_is_a_plotting_leaf():
    graph = _package_imports()
    assert not graph["keras_colour.figures"] & {
        "keras_colour.experiment",
        "keras_colour.run_folder",
        "keras_colour.callbacks",
    }


def test_config_imports_no_tensorflow():
    result = python_subprocess(
        "import sys, keras_colour.config as c; c.load_config('experiments/gorriz.yaml'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))",
        env={"IMAGENET_DIR": "/data/imagenet"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_no_private_keras_api():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                for needle in ("keras.src", "_run_through_graph", "_nodes_by_depth"):
                    assert needle not in text, (name, needle)


def test_every_registry_matches_its_table_of_names():
    from keras_colour import choices, heads, losses, protocols
    from keras_colour.models import registry

    assert set(registry.GENERATORS) == set(choices.GENERATORS)
    assert set(registry.DISCRIMINATORS) == set(choices.DISCRIMINATORS)
    assert set(registry.BACKBONES) == set(choices.BACKBONES)
    assert set(losses.COLOUR_LOSSES) == set(choices.COLOUR_LOSSES)
    assert set(losses.ADVERSARIAL_LOSSES) == set(choices.ADVERSARIAL_LOSSES)
    assert set(heads.HEADS) == set(choices.SEGMENTATION_HEADS)
    assert set(protocols.PROTOCOLS) == set(choices.PROTOCOLS)


def test_colour_gan_has_no_string_comparisons_in_its_steps():
    from keras_colour.trainer import ColourGAN

    tree = ast.parse(_dedent(ColourGAN))
    steps = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in ("train_step", "test_step")]
    assert len(steps) == 2
    for step in steps:
        for node in ast.walk(step):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                assert not any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands), ast.unparse(
                    node
                )


def _dedent(obj):
    return textwrap.dedent(inspect.getsource(obj))


def _import_graph():
    """keras_colour's modules -> the keras_colour modules they import (at any depth: lazy imports count too)."""
    package = os.path.join(ROOT, "keras_colour")
    modules = {}
    for folder, _, files in os.walk(package):
        for file in files:
            if file.endswith(".py"):
                name = os.path.relpath(os.path.join(folder, file), ROOT)[:-3].replace(os.sep, ".")
                modules[name.removesuffix(".__init__")] = os.path.join(folder, file)
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names)  # fmt: skip
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_the_house_is_layered_no_module_imports_one_that_depends_on_it():
    graph = _import_graph()

    def reaches(start, goal, seen=None):
        seen = seen if seen is not None else set()
        for nxt in graph[start] - seen:
            seen.add(nxt)
            if nxt == goal or reaches(nxt, goal, seen):
                return True
        return False

    cycles = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert not cycles, cycles
    assert not any(dep.startswith("keras_colour.video") for dep in graph["keras_colour.metrics"])
    low = ("keras_colour.choices", "keras_colour.config.schema", "keras_colour.errors", "keras_colour.quiet")
    for module in low:  # the TensorFlow-free bottom of the house imports nothing above it
        assert graph[module] <= {"keras_colour.choices", "keras_colour.errors"}, (module, graph[module])
