"""The layout rules: dependencies flow one way, start-up paths stay light, files stay short.

Layers (a part may import the ones before it, never the ones after):
library (``tloss_nnunet`` without ``repro`` and the CLI) -> noise -> converters -> reproduction kit
(``tloss_nnunet.repro``) -> CLI (``tloss_nnunet.cli``, ``tloss_nnunet.__main__``). The CLI sits above every wing
and imports each wing's ``cli`` module with an import statement (no module names in strings), so the walk
below sees that dependency too; no other library module imports the noise or converter wings.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tloss_nnunet"
CLI_FILES = (PACKAGE / "cli.py", PACKAGE / "__main__.py")
#: folder -> import name of the part (the setup.py package_dir mapping)
PARTS = {
    "library": (PACKAGE, "tloss_nnunet"),
    "noise": (ROOT / "noise", "tloss_nnunet.noise"),
    "converters": (ROOT / "converters", "tloss_nnunet.converters"),
    "kit": (PACKAGE / "repro", "tloss_nnunet.repro"),
    "cli": (PACKAGE, "tloss_nnunet.cli"),
}
#: part -> parts it must not import
FORBIDDEN = {
    "library": ("noise", "converters", "kit", "cli"),
    "noise": ("converters", "kit", "cli"),
    "converters": ("kit", "cli"),
    "kit": ("cli",),
}
HEAVY = ("monai", "cv2", "skimage", "matplotlib")


def _files(part: str) -> list[Path]:
    if part == "cli":
        return list(CLI_FILES)
    folder = PARTS[part][0]
    files = sorted(folder.rglob("*.py"))
    if part == "library":  # the kit and the CLI live inside the package folder but are parts of their own
        files = [f for f in files if PARTS["kit"][0] not in f.parents and f not in CLI_FILES]
    return files


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``path`` (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (nnU-Net's shim lookup needs absolute ones)"
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def _belongs_to(module: str, part: str) -> bool:
    prefix = PARTS[part][1]
    return module == prefix or module.startswith(prefix + ".") or (part == "cli" and module == "tloss_nnunet.__main__")


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_imports_flow_one_way(part: str) -> None:
    files = _files(part)
    assert len(files) >= 5
    offenders = [f"{path.relative_to(ROOT)} imports {module}"
                 for path in files for module in sorted(_imported_modules(path))
                 for other in FORBIDDEN[part] if _belongs_to(module, other)]
    assert offenders == []


def test_the_cli_imports_every_wings_commands() -> None:
    """Each ``cli`` module (the wings' commands) is named by an import statement of ``tloss_nnunet/cli.py``."""
    wings = [path for part in ("library", "noise", "converters") for path in _files(part) if path.name == "cli.py"]
    assert len(wings) >= 4
    wanted = {_module_name(path) for path in wings}
    assert wanted - _imported_modules(PACKAGE / "cli.py") == set()
    assert "importlib" not in _imported_modules(PACKAGE / "cli.py")


def _module_name(path: Path) -> str:
    """Import name of a file of a part (``noise/cli.py`` -> ``tloss_nnunet.noise.cli``)."""
    folder, prefix = next(PARTS[part] for part in ("kit", "noise", "converters", "library")
                          if PARTS[part][0] in path.parents)
    inner = path.relative_to(folder).with_suffix("").parts
    return ".".join([prefix, *(p for p in inner if p != "__init__")])


def _lazy_inits() -> list[Path]:
    return [path for part in ("library", "noise", "converters", "kit") for path in _files(part)
            if path.name == "__init__.py" and "lazy_attributes(" in path.read_text()]


def _type_checking_imports(path: Path) -> dict[str, str]:
    """name -> module of every import under the module-level ``if TYPE_CHECKING:``."""
    names: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                for alias in statement.names:
                    assert alias.asname in (None, alias.name), f"{path}: {alias.name} renamed"
                    names[alias.name] = statement.module
    return names


def test_five_packages_resolve_names_lazily() -> None:
    assert len(_lazy_inits()) == 5


@pytest.mark.parametrize("init", _lazy_inits(), ids=lambda p: str(p.relative_to(ROOT)))
def test_lazy_names_are_the_type_checkers_names(init: Path) -> None:
    """The ``if TYPE_CHECKING:`` imports (what IDEs and type checkers see) are exactly the lazy names, from
    the same modules; every public name is lazy or defined at import, and each resolves to its module's."""
    package = importlib.import_module(_module_name(init))
    assert _type_checking_imports(init) == package._LAZY
    eager = set(package.__all__) - set(package._LAZY)
    assert all(name in vars(package) for name in eager) and set(package._LAZY) <= set(package.__all__)
    for name, module in package._LAZY.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name)


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from tloss_nnunet.repro import pipeline\n")
    assert any(_belongs_to(m, "kit") for m in _imported_modules(sample))


def test_library_modules_import_no_heavy_module_at_import_time() -> None:
    """MONAI, OpenCV, scikit-image and matplotlib are imported inside the functions that need them, so neither
    the command line nor nnU-Net's trainer lookup pays for them because of this library."""
    offenders = []
    for path in _files("library"):
        for node in ast.parse(path.read_text()).body:  # module level only (not in functions or TYPE_CHECKING)
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in HEAVY]
    assert offenders == []


MAX_LINES = 300


def test_no_project_file_is_longer_than_the_rule() -> None:
    folders = (PACKAGE, ROOT / "noise", ROOT / "converters", ROOT / "tests", ROOT / "benchmarks")
    files = [path for folder in folders for path in folder.rglob("*.py") if "__pycache__" not in path.parts]
    assert len(files) > 50
    too_long = {str(path.relative_to(ROOT)): n for path in files
                if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_module() -> None:
    result = _run(
        "import contextlib, io, json, sys\n"
        "from tloss_nnunet.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print(json.dumps({'help': 'export-stock' in out.getvalue() and 'convert' in out.getvalue(),\n"
        "                  'loaded': sorted({m.split('.')[0] for m in sys.modules} & set("
        + repr(HEAVY) + " + ('torch',)))}))\n")
    assert result == {"help": True, "loaded": []}


def test_trainer_lookup_adds_no_heavy_module_and_no_kit() -> None:
    """nnU-Net's own lookup already loads scikit-image and matplotlib; the library's shim adds nothing heavy."""
    result = _run(
        "import contextlib, io, json, os, sys\n"
        "from tloss_nnunet.nnunet import ext_trainer_path\n"
        "os.environ['nnUNet_extTrainer'] = ext_trainer_path()\n"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    find('nnUNetTrainer')\n"
        "    stock = {m.split('.')[0] for m in sys.modules}\n"
        "    found = find('nnUNetTrainerTLoss_tiny').__name__\n"
        "ours = {m.split('.')[0] for m in sys.modules}\n"
        "parts = sorted(m for m in sys.modules if m.startswith(('tloss_nnunet.repro', 'tloss_nnunet.noise',\n"
        "                                                     'tloss_nnunet.converters')))\n"
        "print(json.dumps({'found': found, 'added_heavy': sorted((ours - stock) & set(" + repr(HEAVY) + ")),\n"
        "                  'monai_or_cv2': sorted(ours & {'monai', 'cv2'}), 'other_parts': parts}))\n")
    assert result == {"found": "nnUNetTrainerTLoss_tiny", "added_heavy": [], "monai_or_cv2": [], "other_parts": []}


def test_the_longest_modules_conftest_hands_out_first_exist():
    from conftest import LONGEST_MODULES

    tests = Path(__file__).resolve().parent
    assert len(set(LONGEST_MODULES)) == len(LONGEST_MODULES)
    assert [name for name in LONGEST_MODULES if not (tests / f"{name}.py").is_file()] == []
