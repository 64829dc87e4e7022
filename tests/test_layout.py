"""The tree is the pipeline: a package per stage with a docstring, small modules, folder deps, tests that mirror it."""

from __future__ import annotations

import ast

import pytest
import yaml
from helpers import REPO

PACKAGE = REPO / "src" / "vaeops"
STAGE_PACKAGES = ("core", "data", "training", "evaluation", "serving", "lifecycle")
MAX_MODULE_LINES = 300


def python_modules() -> list:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_one_package_per_stage_each_saying_what_it_reads_and_writes():
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(STAGE_PACKAGES)
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "cli.py"], "stage code belongs in a stage package"
    for name in STAGE_PACKAGES:
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
            assert (REPO / dep).is_dir() and (REPO / dep / "__init__.py").is_file(), f"stage {name}: {dep} is not a package"


def test_the_test_tree_mirrors_the_package_tree():
    for name in STAGE_PACKAGES:
        assert list((REPO / "tests" / name).glob("test_*.py")), f"tests/{name}/ has no tests for vaeops.{name}"
