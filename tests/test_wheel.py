"""The project as a user installs it: a wheel built from the checkout, installed (not editable) in a fresh
environment, used from a folder outside the checkout.

An editable install (what every other test uses) finds modules in the checkout, so a package that the
packaging forgets goes unnoticed there. The fresh environment reuses this one's installed dependencies through a
``.pth`` line (a path only: the ``.pth`` files in that folder, among them the editable install's, are not run),
so nothing is downloaded and the wheel is the only ``tloss_nnunet`` it can import.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> its import name (setup.py's package_dir)
SOURCES = {ROOT / "tloss_nnunet": "tloss_nnunet", ROOT / "noise": "tloss_nnunet/noise",
           ROOT / "converters": "tloss_nnunet/converters"}

_SUBCOMMANDS = """
import argparse, json
from tloss_nnunet.cli import build_parser

def walk(parser, prefix):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [*prefix, name]
                yield from walk(sub, [*prefix, name])

print(json.dumps(list(walk(build_parser(), []))))
"""
_WHERE = """
import json, tloss_nnunet.audit, tloss_nnunet.converters, tloss_nnunet.noise, tloss_nnunet.repro
print(json.dumps([m.__file__ for m in (tloss_nnunet, tloss_nnunet.audit, tloss_nnunet.noise,
                                       tloss_nnunet.converters, tloss_nnunet.repro)]))
"""
_LOOKUP = """
import contextlib, inspect, io, json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find
with contextlib.redirect_stdout(io.StringIO()):
    trainer = find("nnUNetTrainerTLoss")
print(json.dumps([trainer.__name__, inspect.getfile(trainer)]))
"""


def _checkout_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore: the checkout as a user would clone it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _run(args: list[str], env: dict, cwd: Path, timeout: int = 600) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from a copy of the checkout, install it in a fresh venv; its paths and environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for name in _checkout_files():  # a copy: building writes build/ and *.egg-info next to the sources
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(tmp / "dist"), str(source)], env, tmp)
    (wheel,) = (tmp / "dist").glob("tloss_nnunet-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, tmp)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, tmp)
    dependencies = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib.strip()) / "dependencies.pth").write_text("".join(f"{p}\n" for p in dependencies))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], env, tmp)
    outside = tmp / "elsewhere"
    outside.mkdir()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return {"wheel": wheel, "venv": venv, "python": str(python), "tool": str(venv / "bin" / "tloss-nnunet"),
            "env": env, "cwd": outside}


def test_the_wheel_holds_every_module_of_the_checkout(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    expected = {f"{target}/{path.relative_to(folder).as_posix()}" for folder, target in SOURCES.items()
                for path in folder.rglob("*.py") if "__pycache__" not in path.parts}
    assert {"tloss_nnunet/audit/__init__.py", "tloss_nnunet/noise/__init__.py",
            "tloss_nnunet/converters/__init__.py", "tloss_nnunet/nnunet/ext_trainer/tloss_nnunet_ext_trainers.py",
            "tloss_nnunet/repro/ext_trainer/tloss_nnunet_repro_trainers.py"} <= expected
    assert expected - names == set()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"tloss_nnunet"}


def test_the_installed_package_is_the_wheel(installed):
    files = json.loads(_run([installed["python"], "-c", _WHERE], installed["env"], installed["cwd"]))
    assert all(Path(f).is_relative_to(installed["venv"]) for f in files), files


def test_every_subcommand_answers_help(installed):
    commands = json.loads(_run([installed["python"], "-c", _SUBCOMMANDS], installed["env"], installed["cwd"]))
    assert {"ext-path", "export-stock", "noise", "convert", "suspects"} <= {c[0] for c in commands}
    for command in [[], *commands]:
        out = _run([installed["tool"], *command, "--help"], installed["env"], installed["cwd"])
        assert out.startswith(f"usage: {' '.join(['tloss-nnunet', *command])}"), out[:200]


def test_nnunet_finds_the_trainer_through_ext_path(installed):
    ext = _run([installed["tool"], "ext-path"], installed["env"], installed["cwd"]).strip()
    assert Path(ext).is_relative_to(installed["venv"])
    env = dict(installed["env"], nnUNet_extTrainer=ext)
    name, where = json.loads(_run([installed["python"], "-c", _LOOKUP], env, installed["cwd"]))
    assert name == "nnUNetTrainerTLoss" and Path(where).is_relative_to(installed["venv"])


def test_suspects_on_a_tiny_model(installed, trained_tloss_model):
    env = {**installed["env"], **{k: v for k, v in trained_tloss_model["env"].items() if k.startswith("nnUNet_")}}
    out = installed["cwd"] / "audit"
    _run([installed["tool"], "suspects", trained_tloss_model["model"], "-o", str(out), "-f", "0",
          "-device", "cpu", "-npp", "1", "-nps", "1", "--quiet"], env, installed["cwd"])
    with open(out / "suspects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and all(row["tloss_nll"] != "" for row in rows)  # every case, under the fold's nu
