"""Run the stock nnU-Net v2 commands (plan, train, predict, evaluate) for one work folder, resumably.

Every step is the real command line (``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``,
``nnUNetv2_predict``, ``nnUNetv2_evaluate_folder``) from the virtual environment this Python runs in,
started with an environment from :func:`nnunet_env` (nnU-Net's three folders under the work folder,
the library's and the kit's trainers findable through ``nnUNet_extTrainer``). Each command's output goes to a log
file; the console gets one line per step (and a progress bar over training epochs).

Finished work is not redone, so a pipeline can simply be run again after an interruption:

* :func:`plan_and_preprocess` is skipped when the plans and every preprocessed case exist;
* :func:`train` is skipped when ``checkpoint_final.pth`` exists and continues (``--c``) from
  ``checkpoint_latest.pth`` / ``checkpoint_best.pth`` otherwise;
* :func:`predict` is skipped when every input case has its prediction, and continues
  (``--continue_prediction``) when only some have;
* :func:`evaluate` reuses ``summary.json`` when it is newer than every prediction.

    env = nnunet_env(Path("work"), device="cpu")
    plan_and_preprocess(501, env)
    model = train(501, "nnUNetTrainerTLoss", env)
    predict(raw / "imagesTs", Path("work/pred"), 501, "nnUNetTrainerTLoss", env)
    result = evaluate(raw / "labelsTs", Path("work/pred"), 501, "nnUNetTrainerTLoss", env)
    print(result.dice_mean, result.dice_pooled)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Re-exported: the pipeline's API is one module (``from tloss_nnunet.repro import pipeline``).
from tloss_nnunet.repro.nnunet_env import nnunet_env
from tloss_nnunet.repro.scores import Evaluation, evaluation_current, pooled_dice, read_segmentations, read_summary

__all__ = [
    "Evaluation",
    "dataset_folder_name",
    "evaluate",
    "evaluation_current",
    "model_folder",
    "nnunet_env",
    "plan_and_preprocess",
    "pooled_dice",
    "predict",
    "predictions_done",
    "preprocessing_done",
    "read_summary",
    "run_nnunet",
    "train",
]

PLANS = "nnUNetPlans"
#: nnU-Net checkpoints in the order ``--c`` prefers them (the final one means: training finished).
FINAL_CHECKPOINT = "checkpoint_final.pth"
RESUMABLE_CHECKPOINTS = ("checkpoint_latest.pth", "checkpoint_best.pth")
_EPOCH_LINE = re.compile(r": Epoch (\d+)\s*$")
_TAIL_LINES = 40


def _executable(name: str, env: Mapping[str, str]) -> str:
    """The nnU-Net console script next to this interpreter (the venv's bin), else the one on ``PATH``."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name, path=env.get("PATH"))
    if found is None:
        raise RuntimeError(f"{name} not found next to {sys.executable} nor on PATH: is nnunetv2 installed?")
    return found


def run_nnunet(args: Sequence[str], env: Mapping[str, str], log_file: Path | None = None,
               *, on_line: Callable[[str], None] | None = None) -> None:
    """Run the nnU-Net command ``args`` (e.g. ``["nnUNetv2_train", "501", "2d", "0"]``) and wait for it.

    stdout and stderr are appended to ``log_file`` (or passed to this process's stdout when it is None)
    line by line; ``on_line`` sees every line too (progress bars). A non-zero exit raises
    :class:`RuntimeError` naming the command, the log file and the last lines of output.
    """
    command = [_executable(args[0], env), *map(str, args[1:])]
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") if log_file is not None else _Stdout() as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        process = subprocess.Popen(command, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
        try:
            for line in process.stdout:
                sink.write(line)
                sink.flush()
                tail.append(line.rstrip("\n"))
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
    if returncode != 0:
        where = f"; full log: {log_file}" if log_file is not None else ""
        raise RuntimeError(f"{' '.join(map(str, args))} failed with exit code {returncode}{where}\n"
                           f"last lines of its output:\n" + "\n".join(tail))


class _Stdout:
    """``sys.stdout`` as a context manager that is not closed on exit."""

    def __enter__(self):
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()


# ----------------------------------------------------------------------------- folders
def dataset_folder_name(dataset_id: int, env: Mapping[str, str]) -> str:
    """``DatasetXXX_Name`` of ``dataset_id`` in ``env['nnUNet_raw']`` (or the preprocessed folder)."""
    for root in (env.get("nnUNet_raw"), env.get("nnUNet_preprocessed")):
        if root and Path(root).is_dir():
            matches = sorted(p.name for p in Path(root).glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir())
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise RuntimeError(f"dataset id {dataset_id} is ambiguous in {root}: {matches}")
    raise RuntimeError(f"no Dataset{int(dataset_id):03d}_* folder in nnUNet_raw={env.get('nnUNet_raw')!r}")


def model_folder(dataset_id: int, trainer: str, env: Mapping[str, str], configuration: str = "2d") -> Path:
    """nnU-Net's model folder ``$nnUNet_results/DatasetXXX_Name/<trainer>__nnUNetPlans__<configuration>``."""
    return (Path(env["nnUNet_results"]) / dataset_folder_name(dataset_id, env)
            / f"{trainer}__{PLANS}__{configuration}")


def preprocessing_done(dataset_id: int, env: Mapping[str, str], configurations: Sequence[str] = ("2d",)) -> bool:
    """True when the plans exist and every training case of ``dataset.json`` is preprocessed for every
    configuration (nnU-Net writes one ``<case>.pkl`` beside each case's array files)."""
    name = dataset_folder_name(dataset_id, env)
    folder = Path(env["nnUNet_preprocessed"]) / name
    plans_file = folder / f"{PLANS}.json"
    raw_json = Path(env["nnUNet_raw"]) / name / "dataset.json"
    if not plans_file.is_file() or not raw_json.is_file():
        return False
    expected = json.loads(raw_json.read_text())["numTraining"]
    plans = json.loads(plans_file.read_text())
    for configuration in configurations:
        config = plans["configurations"].get(configuration)
        if config is None:
            return False
        data = folder / config.get("data_identifier", f"{PLANS}_{configuration}")
        if not data.is_dir() or len(list(data.glob("*.pkl"))) != expected:
            return False
    return True


# ----------------------------------------------------------------------------- steps
def plan_and_preprocess(dataset_id: int, env: Mapping[str, str], configurations: Sequence[str] = ("2d",),
                        log_file: Path | None = None) -> None:
    """``nnUNetv2_plan_and_preprocess -d ID -c ... --verify_dataset_integrity``, unless already done.

    nnU-Net's planner calls ``torch.set_num_threads(nnUNet_n_proc_DA)``, which fails for 0 (the value
    single-threaded CPU training wants): this command gets at least 1. Fingerprint extraction gets
    ``nnUNet_def_n_proc`` processes too (``-npfp``): nnU-Net's default, 8, starts 8 interpreters that each import
    torch; the demo's planning step took 64 s with it and 39 s with 1 on the 2-core machine.
    """
    if preprocessing_done(dataset_id, env, configurations):
        return
    step_env = dict(env)
    if step_env.get("nnUNet_n_proc_DA", "").strip() == "0":
        step_env["nnUNet_n_proc_DA"] = "1"
    processes = step_env.get("nnUNet_def_n_proc", "1")
    run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", *configurations,
                "-np", *([processes] * len(configurations)), "-npfp", processes, "--verify_dataset_integrity"],
               step_env, log_file)


def train(dataset_id: int, trainer: str, env: Mapping[str, str], fold: int | str = 0, configuration: str = "2d",
          device: str = "cpu", log_file: Path | None = None, *,
          on_epoch: Callable[[int], None] | None = None) -> Path:
    """``nnUNetv2_train ID CONFIGURATION FOLD -tr TRAINER -device DEVICE`` and return the model folder
    (``.../<trainer>__nnUNetPlans__<configuration>``; the fold's files are in ``fold_<fold>/``).

    Skipped when ``fold_<fold>/checkpoint_final.pth`` exists; continued with ``--c`` when an
    intermediate checkpoint exists. ``on_epoch(n)`` is called when epoch ``n`` (0-based) starts.
    """
    folder = model_folder(dataset_id, trainer, env, configuration)
    fold_dir = folder / f"fold_{fold}"
    if (fold_dir / FINAL_CHECKPOINT).is_file():
        return folder
    resume = any((fold_dir / name).is_file() for name in RESUMABLE_CHECKPOINTS)

    def watch(line: str) -> None:
        match = _EPOCH_LINE.search(line)
        if match and on_epoch is not None:
            on_epoch(int(match.group(1)))

    run_nnunet(["nnUNetv2_train", str(dataset_id), configuration, str(fold), "-tr", trainer, "-device", device,
                *(["--c"] if resume else [])], env, log_file, on_line=watch)
    if not (fold_dir / FINAL_CHECKPOINT).is_file():
        raise RuntimeError(f"nnUNetv2_train finished without writing {fold_dir / FINAL_CHECKPOINT}; see {log_file}")
    return folder


def _expected_predictions(input_dir: Path, output_dir: Path, file_ending: str) -> list[Path]:
    """One output ``<case><ending>`` per input case (files ``<case>_0000<ending>``, ``<case>_0001...``)."""
    cases = sorted({p.name[: -len(file_ending) - 5] for p in input_dir.glob(f"*_[0-9][0-9][0-9][0-9]{file_ending}")})
    if not cases:
        raise RuntimeError(f"no input images (<case>_0000{file_ending}) in {input_dir}")
    return [output_dir / f"{case}{file_ending}" for case in cases]


def _file_ending(dataset_id: int, env: Mapping[str, str]) -> str:
    raw_json = Path(env["nnUNet_raw"]) / dataset_folder_name(dataset_id, env) / "dataset.json"
    return json.loads(raw_json.read_text())["file_ending"]


def predictions_done(input_dir: Path, output_dir: Path, dataset_id: int, env: Mapping[str, str]) -> bool:
    """True when every case of ``input_dir`` has its prediction in ``output_dir``."""
    expected = _expected_predictions(Path(input_dir), Path(output_dir), _file_ending(dataset_id, env))
    return all(p.is_file() for p in expected)


def predict(input_dir: Path, output_dir: Path, dataset_id: int, trainer: str, env: Mapping[str, str],
            fold: int | str = 0, configuration: str = "2d", device: str = "cpu",
            log_file: Path | None = None, checkpoint: str = FINAL_CHECKPOINT) -> Path:
    """``nnUNetv2_predict -i INPUT -o OUTPUT -d ID -tr TRAINER -c CONFIGURATION -f FOLD -chk CHECKPOINT`` and
    return ``output_dir``.

    Skipped when every case of ``input_dir`` has its prediction; continues when some have. On CPU
    prediction runs in one process (``-npp 0 -nps 0``): worker processes cost more than they save there.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    expected = _expected_predictions(input_dir, output_dir, _file_ending(dataset_id, env))
    done = [p.is_file() for p in expected]
    if all(done):
        return output_dir
    workers = ["-npp", "0", "-nps", "0"] if device == "cpu" else ["-npp", "2", "-nps", "2"]
    run_nnunet(["nnUNetv2_predict", "-i", str(input_dir), "-o", str(output_dir), "-d", str(dataset_id),
                "-tr", trainer, "-c", configuration, "-f", str(fold), "-device", device, "-chk", checkpoint,
                "--disable_progress_bar", *workers, *(["--continue_prediction"] if any(done) else [])], env, log_file)
    missing = [p.name for p in expected if not p.is_file()]
    if missing:
        raise RuntimeError(f"nnUNetv2_predict left {len(missing)} case(s) without a prediction in {output_dir}: "
                           f"{missing[:5]}")
    return output_dir


# ----------------------------------------------------------------------------- evaluation
def evaluate(gt_dir: Path, pred_dir: Path, dataset_id: int, trainer: str, env: Mapping[str, str],
             configuration: str = "2d", log_file: Path | None = None) -> Evaluation:
    """``nnUNetv2_evaluate_folder GT PRED -djfile -pfile -o PRED/summary.json`` (the model's dataset.json
    and plans.json) plus the pooled Dice from the same files; see :class:`Evaluation`.

    The command is skipped when ``summary.json`` is newer than every prediction. Every ground-truth
    case must have a prediction.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    folder = model_folder(dataset_id, trainer, env, configuration)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    ending = dataset_json["file_ending"]
    references = sorted(gt_dir.glob(f"*{ending}"))
    if not references:
        raise RuntimeError(f"no ground-truth segmentations (*{ending}) in {gt_dir}")
    case_ids = [p.name[: -len(ending)] for p in references]
    missing = [c for c in case_ids if not (pred_dir / f"{c}{ending}").is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} ground-truth case(s) have no prediction in {pred_dir}: {missing[:5]}")
    summary = pred_dir / "summary.json"
    if not evaluation_current(pred_dir, ending):
        # nnU-Net writes the file in place: write under a temporary name (it must end in .json), then rename.
        partial = pred_dir / f".summary.{os.getpid()}.json"
        try:
            run_nnunet(["nnUNetv2_evaluate_folder", str(gt_dir), str(pred_dir), "-djfile",
                        str(folder / "dataset.json"), "-pfile", str(folder / "plans.json"), "-o", str(partial),
                        "-np", env.get("nnUNet_def_n_proc", "1")], env, log_file)
            os.replace(partial, summary)
        finally:
            partial.unlink(missing_ok=True)
    per_case, mean = read_summary(summary, ending)
    pooled = pooled_dice(read_segmentations(gt_dir, pred_dir, case_ids, dataset_json))
    return Evaluation(per_case=per_case, dice_mean=mean, dice_pooled=pooled, summary_path=summary)
