"""Project rules: `vaura_core` stays free of Qt, pyqtgraph and sounddevice.

Three independent checks: import-linter with the contract from pyproject.toml (also run against a temporary
tree with planted violations, to prove the contract really bites), an AST scan of the source (catches
`importlib.import_module("PySide6")`, which import-linter cannot see), and a runtime import of every
`vaura_core` module in a fresh interpreter (catches Qt pulled in through a third-party package).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
CORE_PACKAGE = "vaura_core"


def _importlinter_config() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]


def _core_forbidden_modules() -> list[str]:
    """The forbidden modules of the contract whose source is vaura_core (the single source of truth)."""
    for contract in _importlinter_config().get("contracts", []):
        if contract.get("type") == "forbidden" and CORE_PACKAGE in contract.get("source_modules", []):
            return list(contract["forbidden_modules"])
    raise AssertionError(f"{PYPROJECT} has no forbidden-imports contract with source {CORE_PACKAGE!r}")


def _lint_imports_executable() -> str:
    beside_python = Path(sys.executable).with_name("lint-imports")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    return found


def _run_lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # --no-cache: nothing written into the tree; PYTHONPATH: the root packages importable from `root`.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [_lint_imports_executable(), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- AST scan ---------------------------------------------------------------------------------------------


def _is_forbidden(module: str, forbidden: Collection[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in forbidden)


def _dynamic_import_target(call: ast.Call) -> str | None:
    """The module named by `importlib.import_module("x")`, `import_module("x")` or `__import__("x")`."""
    func = call.func
    is_import_call = (isinstance(func, ast.Name) and func.id in {"__import__", "import_module"}) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if not is_import_call or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def find_forbidden_imports(
    source: str, forbidden: Collection[str], filename: str = "<source>"
) -> list[tuple[int, str]]:
    """(line, module) for every absolute import of a forbidden module in `source`, lazy imports included."""
    hits: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from PySide6 import QtCore` names the package in node.module; relative imports stay inside.
            modules = [node.module]
        elif isinstance(node, ast.Call):
            target = _dynamic_import_target(node)
            modules = [target] if target else []
        else:
            continue
        hits.extend((node.lineno, module) for module in modules if _is_forbidden(module, forbidden))
    return sorted(hits)


# --- tests ------------------------------------------------------------------------------------------------


def test_lint_imports_keeps_every_contract() -> None:
    result = _run_lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return json.dumps(value)  # a JSON string or number is also a valid TOML one
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"unexpected import-linter setting {value!r}")


def _importlinter_toml(config: dict[str, Any]) -> str:
    lines = ["[tool.importlinter]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config.items() if key != "contracts"]
    for contract in config.get("contracts", []):
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in contract.items()]
    return "\n".join(lines) + "\n"


def _write_package_tree(root: Path, files: dict[str, str]) -> None:
    config = _importlinter_config()
    root_packages = config.get("root_packages") or [config["root_package"]]
    for package in root_packages:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "pyproject.toml").write_text(_importlinter_toml(config))


def test_import_linter_contract_catches_planted_violations(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    _write_package_tree(
        clean,
        {
            "vaura_core/engine.py": "import json\n\nfrom vaura_core import helpers\n",
            "vaura_core/helpers.py": "import numpy\n",
            "app/window.py": "from PySide6 import QtWidgets\n\nimport vaura_core.engine\n",
        },
    )
    result = _run_lint_imports(clean)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = tmp_path / "broken"
    _write_package_tree(
        broken,
        {
            "vaura_core/engine.py": "from PySide6 import QtCore\n",
            "vaura_core/plots/__init__.py": "",
            "vaura_core/plots/curve.py": "import pyqtgraph as pg\n",
            "vaura_core/audio.py": "def play():\n    import sounddevice\n    return sounddevice\n",
            "vaura_core/uses_gui.py": "from app import window\n",
            "app/window.py": "",
        },
    )
    result = _run_lint_imports(broken)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for edge in (
        "vaura_core.engine -> PySide6",
        "vaura_core.plots.curve -> pyqtgraph",
        "vaura_core.audio -> sounddevice",
        "vaura_core.uses_gui -> app",
    ):
        assert edge in output, output


def test_vaura_core_source_has_no_forbidden_imports() -> None:
    forbidden = _core_forbidden_modules()
    sources = sorted((REPO_ROOT / CORE_PACKAGE).rglob("*.py"))
    assert sources, "vaura_core has no Python files"
    violations = [
        f"{path.relative_to(REPO_ROOT)}:{line}: imports {module}"
        for path in sources
        for line, module in find_forbidden_imports(path.read_text(encoding="utf-8"), forbidden, str(path))
    ]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import PySide6\n", [(1, "PySide6")]),
        ("import os\nimport PySide6.QtCore as qc\n", [(2, "PySide6.QtCore")]),
        ("from PySide6.QtWidgets import QWidget\n", [(1, "PySide6.QtWidgets")]),
        ("from PyQt6 import QtCore\n", [(1, "PyQt6")]),
        ("import numpy, pyqtgraph\n", [(1, "pyqtgraph")]),
        ("def play():\n    import sounddevice as sd\n    return sd\n", [(2, "sounddevice")]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.main import main\n",
            [(3, "app.main")],
        ),
        ("import importlib\nqt = importlib.import_module('PySide6.QtGui')\n", [(2, "PySide6.QtGui")]),
        ("from importlib import import_module\nsd = import_module('sounddevice')\n", [(2, "sounddevice")]),
        ("pg = __import__('pyqtgraph')\n", [(1, "pyqtgraph")]),
    ],
)
def test_scanner_flags_forbidden_imports(snippet: str, expected: list[tuple[int, str]]) -> None:
    assert find_forbidden_imports(snippet, _core_forbidden_modules()) == expected


@pytest.mark.parametrize(
    "snippet",
    [
        '"""Never import PySide6 here."""\n# import pyqtgraph\nNAME = "sounddevice"\n',
        "import sounddevice_stub\nimport applause\nimport pyqtgraphics\n",
        "from . import app\nfrom .app import widgets\nfrom ..sounddevice import x\n",
        "import importlib\nmodule = importlib.import_module(name)\n",
        "import torch\nfrom vaura_core.errors import VauraError\n",
    ],
)
def test_scanner_ignores_lookalikes(snippet: str) -> None:
    assert find_forbidden_imports(snippet, _core_forbidden_modules()) == []


def test_importing_all_of_vaura_core_loads_no_gui_or_audio_module() -> None:
    forbidden = sorted({name.split(".")[0] for name in _core_forbidden_modules()})
    # A fresh interpreter: this test process has Qt loaded by pytest-qt already. `__main__` modules are
    # skipped because importing `vaura_core.cli.__main__` runs the CLI.
    script = (
        "import importlib, json, pkgutil, sys\n"
        "import vaura_core\n"
        "for info in pkgutil.walk_packages(vaura_core.__path__, 'vaura_core.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        f"forbidden = {forbidden!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(forbidden))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing vaura_core loaded {loaded}"
