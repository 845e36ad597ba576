"""The package layout the architecture promises (docs/ARCHITECTURE.md): imports go one way, the install is tidy."""

from __future__ import annotations

import ast
import json
import re

from conftest import ROOT

RUN_SCRIPTS = {"run_post_training", "run_fine_tuning", "run_distillation"}
DESIGN_CARD = {"modeling_mrs", "data_collators", *RUN_SCRIPTS}


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_a_run_script() -> None:
    modules = [
        *sorted((ROOT / "ko_mrs").glob("*.py")),
        ROOT / "modeling_mrs.py",
        ROOT / "data_collators.py",
        ROOT / "demo.py",
    ]
    scripts = [ROOT / f"{name}.py" for name in RUN_SCRIPTS]
    for path in modules + scripts:
        assert not imported_modules(path) & RUN_SCRIPTS, path


def test_only_the_design_card_and_the_package_install_top_level() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is 3.11+; the project runs on 3.10
    setuptools = pyproject.split("[tool.setuptools]", 1)[1].split("\n[", 1)[0]
    assert set(json.loads(re.search(r"^py-modules = (\[.*\])$", setuptools, re.M).group(1))) == DESIGN_CARD
    assert json.loads(re.search(r"^packages = (\[.*\])$", setuptools, re.M).group(1)) == ["ko_mrs"]
    top_level = {path.stem for path in ROOT.glob("*.py")} - {"demo"}  # demo.py is `make demo`, not installed
    assert top_level == DESIGN_CARD
