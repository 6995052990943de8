"""The package's import graph: one module per job, layered, with the run layer on top."""

import ast
import functools
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lora_teach"
MODULES = {path.stem: ast.parse(path.read_text()) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def imports_of(tree):
    """(module, name) for every ``from lora_teach(.module) import name`` in the module."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lora_teach"):
            for alias in node.names:
                if node.module == "lora_teach":
                    found.add((alias.name, None))
                else:
                    found.add((node.module.split(".")[1], alias.name))
    return found


DEPENDS = {name: {module for module, _ in imports_of(tree)} - {name} for name, tree in MODULES.items()}


@functools.cache
def floor(name):
    return 1 + max((floor(d) for d in DEPENDS[name]), default=-1)


def test_every_import_names_a_module_of_the_package():
    for name, depends in DEPENDS.items():
        assert depends <= set(MODULES), f"{name} imports {depends - set(MODULES)}"


def test_the_run_layer_is_the_only_top_floor():
    top = max(floor(name) for name in MODULES)
    assert [name for name in MODULES if floor(name) == top] == ["experiments"]
    assert not any("experiments" in depends for depends in DEPENDS.values()), "nothing imports the run layer"


def test_no_module_imports_another_modules_private_names():
    for name, tree in MODULES.items():
        private = [f"{module}.{item}" for module, item in imports_of(tree) if item and item.startswith("_")]
        assert not private, f"{name} imports {private}"
