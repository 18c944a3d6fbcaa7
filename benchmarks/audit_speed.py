"""What label auditing costs next to nnU-Net's own prediction of the same cases.

A synthetic 2D dataset of N training cases is planned with nnU-Net, and a T-Loss trainer's freshly initialised
network is saved as fold 0's checkpoint (prediction costs the same for any weights). Then, interleaved, R times
each and each into a fresh folder: the stock ``nnUNetv2_predict`` of imagesTr, the same with
``--save_probabilities``, and ``tloss-nnunet suspects`` (prediction with probabilities, scoring, csv, summary and
gallery). Prints the median wall times and the ratios to the plain prediction.

    python -m benchmarks.audit_speed --cases 200 --size 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET_ID = 640
BIN = Path(sys.executable).parent


def _model(root: Path, cases: int, size: int) -> Path:
    """Raw dataset, plans and a saved (untrained) nnUNetTrainerTLoss fold 0; returns the model folder."""
    import torch

    from tloss_nnunet.nnunet import nnUNetTrainerTLoss
    from tloss_nnunet.repro.inprocess import make_trainer, plan_and_preprocess_in_process
    from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

    write_synthetic_dataset(os.environ["nnUNet_raw"], DATASET_ID, "2d", num_train=cases, num_test=1, size=size)
    plan_and_preprocess_in_process(DATASET_ID)
    trainer = make_trainer(nnUNetTrainerTLoss, DATASET_ID, "2d", 0, torch.device("cpu"))
    trainer.initialize()
    os.makedirs(trainer.output_folder, exist_ok=True)
    trainer.save_checkpoint(os.path.join(trainer.output_folder, "checkpoint_final.pth"))
    base = Path(trainer.output_folder_base)
    (base / "plans.json").write_text(json.dumps(trainer.plans_manager.plans))
    (base / "dataset.json").write_text(json.dumps(trainer.dataset_json))
    return base


def _timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="-npp and -nps of both commands")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="tloss-audit-speed-"))
    try:
        from tloss_nnunet.repro.nnunet_env import nnunet_env

        env = nnunet_env(root, "cpu")
        os.environ.update({k: env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
        model = _model(root, args.cases, args.size)
        images = str(Path(env["nnUNet_raw"]) / model.parent.name / "imagesTr")
        procs = ["-npp", str(args.processes), "-nps", str(args.processes)]
        predict = [str(BIN / "nnUNetv2_predict"), "-i", images, "-d", str(DATASET_ID), "-c", "2d", "-f", "0",
                   "-tr", "nnUNetTrainerTLoss", "-device", "cpu", *procs]
        commands = {
            "nnUNetv2_predict": lambda out: [*predict, "-o", out],
            "nnUNetv2_predict --save_probabilities": lambda out: [*predict, "-o", out, "--save_probabilities"],
            "tloss-nnunet suspects": lambda out: [str(BIN / "tloss-nnunet"), "suspects", str(model), "-o", out,
                                                  "-device", "cpu", *procs, "--quiet"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for repeat in range(args.repeats):
            for i, (name, command) in enumerate(commands.items()):
                times[name].append(_timed(command(str(root / f"out_{repeat}_{i}")), env))
                print(f"repeat {repeat + 1}/{args.repeats}: {name}: {times[name][-1]:.1f} s", flush=True)
        print(f"\n{args.cases} cases of {args.size}x{args.size}, {args.processes} worker processes, "
              f"{args.repeats} interleaved repeats, {os.cpu_count()} CPUs\n")
        print(_table(times))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _table(times: dict[str, list[float]]) -> str:
    """Median and every run per command, and the median relative to ``nnUNetv2_predict``'s."""
    base = statistics.median(times["nnUNetv2_predict"])
    rows = [f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} | "
            f"{statistics.median(values) / base:.2f} |" for name, values in times.items()]
    return "\n".join(["| command | median s | all runs s | / nnUNetv2_predict |", "|---|---|---|---|", *rows])


if __name__ == "__main__":
    raise SystemExit(main())
