"""The tree is the pipeline: stage packages on libraries (import-linter's contracts), small documented modules,
dvc.yaml deps that name a stage's package and its libraries, tests that mirror the packages."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO

PACKAGE = REPO / "src" / "vaeops"
STAGE_PACKAGES = ("data", "training", "evaluation", "export", "serving", "lifecycle")
LIBRARIES = ("core", "model", "bundle", "dataset")
MAX_MODULE_LINES = 300


def python_modules() -> list:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_one_package_per_stage_each_saying_what_it_reads_and_writes():
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(STAGE_PACKAGES + LIBRARIES)
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "cli.py", "stages.py"], "stage code belongs in a stage package"
    for name in STAGE_PACKAGES + LIBRARIES:
        docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert docstring and len(docstring) > 80, f"vaeops.{name} needs a docstring saying what it reads and writes"


@pytest.mark.parametrize("path", python_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_small_and_documented(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has more than {MAX_MODULE_LINES} lines"
    tree = ast.parse(text)
    assert ast.get_docstring(tree), f"{path} has no module docstring"
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            assert ast.get_docstring(node), f"{path.name}: public {node.name} has no docstring"


def test_dvc_stages_depend_on_package_folders_not_single_source_files():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = (stage.get("do") or stage)["deps"]
        code = [dep for dep in deps if dep.startswith("src/")]
        assert code and "src/vaeops/core" in code, f"stage {name} must depend on its package and the core"
        for dep in code:
            assert (REPO / dep).is_dir() and (REPO / dep / "__init__.py").is_file(), (
                f"stage {name}: {dep} is not a package"
            )


# The package each dvc.yaml stage runs.
STAGE_PACKAGE = {
    "prepare": "data",
    "validate": "data",
    "drift": "data",
    "train": "training",
    "evaluate": "evaluation",
    "export": "export",
    "promote": "lifecycle",
}


@functools.cache
def import_graph():
    """vaeops's import graph, built once (grimp, the library under import-linter); no cache folder in the checkout."""
    import grimp

    return grimp.build_graph("vaeops", cache_dir=None)


def vaeops_packages_used(package: str) -> set[str]:
    """The vaeops packages `package` stands on: itself, and every package its modules import, transitively."""
    graph = import_graph()
    top = lambda module: module.split(".")[1] if module.count(".") else None  # noqa: E731
    used, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        for module in graph.find_descendants(f"vaeops.{name}") | {f"vaeops.{name}"}:
            todo += [top(m) for m in graph.find_modules_directly_imported_by(module) if top(m)]
    return used


def test_dvc_code_deps_are_the_stage_package_and_exactly_the_libraries_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = (stage.get("do") or stage)["deps"]
        code = {dep.removeprefix("src/vaeops/") for dep in deps if dep.startswith("src/")}
        assert code == vaeops_packages_used(STAGE_PACKAGE[name]), f"dvc.yaml stage {name}: code deps {sorted(code)}"


def test_the_test_tree_mirrors_the_package_tree():
    for name in STAGE_PACKAGES + LIBRARIES:
        assert list((REPO / "tests" / name).glob("test_*.py")), f"tests/{name}/ has no tests for vaeops.{name}"


def test_import_linter_contracts_hold():
    """No stage package imports another; stages stand on the libraries; serving and the bundle stay torch-free."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


BLOCK_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch" or name.startswith(("vaeops.export", "vaeops.model")):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import vaeops.serving.serve, vaeops.serving.triton, vaeops.bundle.gallery, vaeops.bundle.install
print("imported without torch")
"""


def test_serving_imports_with_torch_blocked():
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "imported without torch" in result.stdout, result.stderr[-2000:]
