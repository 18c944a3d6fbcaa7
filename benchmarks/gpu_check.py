"""The GPU path in one command: loss speed and memory, trainer overhead, stock nnU-Net training, GradScaler.

    benchmarks/gpu_check.sh                          # on a CUDA machine: the full check (about 8 minutes, H200)
    python -m benchmarks.gpu_check --device cuda     # the same, without the shell wrapper
    python -m benchmarks.gpu_check --device cpu --smoke --out /tmp/check.json   # tiny sizes (the test suite)

Sections (``--sections`` picks some; each one's failure is recorded with its error, the others still run):

1. ``loss``: T-Loss vs nnU-Net's Dice+CE (deep supervision) vs the floor ``softmax(x).sum()``, float32 / float16 /
   bfloat16 logits, 2D (batch 12, 2 classes, 512^2 pyramid) and 3D (batch 2, 3 classes, 128^3 pyramid): time
   (CUDA events) and peak memory (``max_memory_allocated``).
2. ``overhead``: ``trainer_overhead.py``'s interleaved ``train_step``, T-Loss trainer vs stock, AMP and nnU-Net's
   default torch.compile (target <= 1.01x per iteration), peak memory of both.
3. ``training``: ``nnUNetv2_train`` of the stock and the T-Loss trainer (short schedule, 256^2 synthetic 2D
   data, AMP + compile), ``--c``, ``nnUNetv2_predict``, ``nnUNetv2_evaluate_folder``.
4. ``scaler``: an injected non-finite gradient under the GradScaler skips the network's and nu's step.

Writes ``--out`` (JSON, default ``benchmarks/results/gpu_check.json``) and the same name with ``.md`` (tables);
both are rewritten after every section. Exit code 0 when every section ran and passed its checks, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.gpu_check_lib.record import Record
from benchmarks.gpu_check_lib.settings import settings_for

SECTIONS = ("loss", "overhead", "training", "scaler")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gpu_check.json"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and few repeats (the CPU test of this check)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (the Markdown goes next to it)")
    p.add_argument("--work", type=Path, help="keep nnU-Net's folders and logs here (default: a temporary folder)")
    return p.parse_args(argv)


def _meta(args: argparse.Namespace, device: torch.device) -> dict:
    meta = {"device": args.device, "smoke": args.smoke, "torch": torch.__version__, "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
            "load_average_start": round(os.getloadavg()[0], 2), "sections": args.sections}
    if device.type == "cuda":
        meta.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    try:
        from importlib.metadata import version

        import nnunetv2  # noqa: F401

        meta["nnunetv2"] = version("nnunetv2")
    except Exception:  # noqa: BLE001 -- the version is informative only
        pass
    return meta


def markdown(data: dict) -> str:
    """The results as Markdown: one table per section, then each section's status, time and failed checks."""
    from benchmarks.gpu_check_lib.loss_section import loss_markdown
    from benchmarks.gpu_check_lib.overhead_section import overhead_markdown
    from benchmarks.gpu_check_lib.training_section import training_markdown

    meta, sections = data["meta"], data["sections"]
    where = meta.get("gpu", f"CPU ({meta['cpu_count']} cores, load {meta['load_average_start']})")
    lines = [f"# GPU check: {where}{' (smoke)' if meta['smoke'] else ''}", "",
             f"torch {meta['torch']}, nnU-Net {meta.get('nnunetv2', '?')}, started {meta['started']}, "
             f"{meta.get('total_seconds', 0):.0f} s in all", "",
             "| section | status | seconds | budget s | failed checks / error |", "|---|---|---|---|---|"]
    for name, s in sections.items():
        lines.append(f"| {name} | {s['status']} | {s.get('seconds', '-')} | {s.get('budget_s', '-')} | "
                     f"{s.get('error', '').splitlines()[0][:120] if s.get('error') else ''} |")
    render = {"loss": loss_markdown, "overhead": overhead_markdown, "training": training_markdown}
    for name, s in sections.items():
        if name in render and s.get("result"):
            lines += ["", f"## {name}", "", *render[name](s["result"])]
        if name == "scaler" and s.get("result"):
            lines += ["", "## scaler", "", ", ".join(f"{k}: {v}" for k, v in s["checks"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here (use --device cpu --smoke for the CPU smoke run)",
              file=sys.stderr)
        return 2
    device = torch.device(args.device)
    settings = settings_for(args.smoke)
    work = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="tloss_gpu_check_"))
    from benchmarks.trainer_overhead import configure_environment

    configure_environment(str(work / "nnunet"), args.device)  # before nnU-Net is first imported
    record = Record(args.out.resolve(), _meta(args, device), markdown)
    print(f"GPU check on {args.device}{' (smoke)' if args.smoke else ''}: budgets "
          + ", ".join(f"{n} {settings.budgets[n]} s" for n in args.sections)
          + f" = {sum(settings.budgets[n] for n in args.sections)} s; results -> {record.json_path}", flush=True)
    for name in args.sections:
        record.run(name, settings.budgets[name], lambda name=name: _section(name, device, settings, work))
    print(f"results: {record.json_path} and {record.markdown_path}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if record.ok else 1


def _section(name: str, device: torch.device, settings, work: Path) -> dict:
    if name == "loss":
        from benchmarks.gpu_check_lib.loss_section import run_loss_section

        return run_loss_section(device, settings)
    if name == "overhead":
        from benchmarks.gpu_check_lib.overhead_section import run_overhead_section

        return run_overhead_section(device, settings)
    if name == "training":
        from benchmarks.gpu_check_lib.training_section import run_training_section

        return run_training_section(device, settings, work)
    from benchmarks.gpu_check_lib.scaler_section import run_scaler_section

    return run_scaler_section(device)


if __name__ == "__main__":
    raise SystemExit(main())
