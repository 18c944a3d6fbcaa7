"""Robustness study: does the T-Loss beat nnU-Net's own loss (Dice+CE) and other baselines under label noise?

For every noise setting (clean; alpha in {0.3, 0.5, 0.7} x beta in {0.5, 0.7}, the paper's protocol), loss
(tloss, dice_ce = nnU-Net's stock loss, ce, dice, gce) and seed, train on the same data with the same
schedule and measure Dice on the CLEAN test labels (mean of per-case Dice, and the paper's pooled Dice).
Each finished run is appended to the results JSON at once (atomic rewrite), so ``--resume`` continues an
interrupted study; ``--summarize`` re-makes the Markdown table and the plot from the JSON without training.

Engines and configurations (see ``robustness_lib/grid.py``):
  --config cpu    MONAI UNet trained in-process (nnU-Net's losses, optimiser recipe and data), 64 x 64
                  synthetic ISIC-like data; the whole grid (105 runs) takes 0.5-2 h on 2 cores.
  --config gpu    nnU-Net's own pipeline (plan, 2D training with the study's 50-epoch trainers, predict,
                  evaluate) at 256 x 256 with ISIC 2017's case counts; meant for a GPU machine.
  --config smoke  seconds; plumbing check.

Usage::

    python benchmarks/robustness.py --config cpu --seeds 0 1 2 --resume
    python benchmarks/robustness.py --config cpu --losses tloss dice_ce --settings clean a0.7b0.7 --resume
    python benchmarks/robustness.py --config gpu --device cuda --release /data/ISIC2017 \\
        --out benchmarks/results/robustness_gpu.json --resume
    python benchmarks/robustness.py --summarize --out benchmarks/results/robustness_short.json
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from robustness_lib.grid import CONFIGS, LOSS_PRIORITY, LOSSES, SETTING_NAMES, StudyConfig, get_config, parse_setting
from robustness_lib.store import ResultStore, load_runs, machine_description
from robustness_lib.summary import plot, render_markdown, write_text_atomic
from tloss_nnunet.errors import InputError

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "robustness_short.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--engine", choices=("monai", "nnunet"), default=None,
                        help="default: the configuration's engine (cpu/smoke: monai, gpu: nnunet)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the configuration's seeds")
    parser.add_argument("--settings", nargs="+", default=list(SETTING_NAMES), help=f"from {SETTING_NAMES}")
    parser.add_argument("--losses", nargs="+", default=list(LOSS_PRIORITY), help=f"from {tuple(LOSSES)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results JSON; the table (.md) and plot (.png) are written beside it")
    parser.add_argument("--resume", action="store_true", help="continue an existing results file, skip done runs")
    parser.add_argument("--summarize", action="store_true", help="only re-make the table and plot from --out")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="data and training outputs (default: a folder per configuration under the temp dir)")
    parser.add_argument("--release", type=Path, default=None,
                        help="an ISIC 2017 release to convert instead of the synthetic one")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (monai engine)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (monai engine)")
    parser.add_argument("--data-workers", type=int, default=1,
                        help="processes that write and convert the dataset family (first run only)")
    parser.add_argument("--nu-lr", type=float, default=None,
                        help="monai engine: Adam lr of the T-Loss's log nu instead of the configuration's; the runs "
                             "are recorded under config '<config>_nulr<value>' (an ablation, kept apart)")
    parser.add_argument("--verify-datasets", action="store_true",
                        help="run nnU-Net's integrity check on every converted dataset (slow on small machines)")
    return parser.parse_args(argv)


def plan_runs(settings: list[str], losses: list[str], seeds: list[int]) -> list[tuple[str, str, int]]:
    """(setting, loss, seed) in priority order: loss by loss (tloss, dice_ce first), then seed, then setting,
    so an interrupted study has the headline comparison on every setting before the other baselines."""
    order = {loss: i for i, loss in enumerate(LOSS_PRIORITY)}
    # A repeated argument must not train (and count) the same run twice.
    settings, losses, seeds = (list(dict.fromkeys(values)) for values in (settings, losses, seeds))
    return [(setting, loss, seed) for loss in sorted(losses, key=order.get)
            for seed in seeds for setting in settings]


def summarize(out: Path) -> tuple[Path, Path]:
    runs = load_runs(out)
    if not runs:
        raise InputError(f"{out} holds no runs yet")
    md, png = out.with_suffix(".md"), out.with_suffix(".png")
    write_text_atomic(md, render_markdown(runs))
    plot(runs, png)
    return md, png


@functools.lru_cache(maxsize=None)  # runs cycle through all settings; the family is tens of MB
def _run_data(dataset_dir: str, clean_dir: str):
    from robustness_lib.monai_engine import RunData

    return RunData.load(Path(dataset_dir), Path(clean_dir))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _monai_run(setting: str, loss: str, seed: int, dataset_dir: str, clean_dir: str, config: StudyConfig,
               device: str) -> dict:
    from robustness_lib.monai_engine import RunSpec, train_and_test

    record = train_and_test(RunSpec(setting, loss, seed), _run_data(dataset_dir, clean_dir), config, device)
    record["machine"] = machine_description(device)
    return record


def run_monai(todo: list[tuple[str, str, int]], family, config: StudyConfig, args, store: ResultStore) -> None:
    clean_dir = str(family.dataset("clean")[1])
    jobs = [(s, loss, seed, str(family.dataset(s)[1]), clean_dir, config, args.device) for s, loss, seed in todo]
    with tqdm(total=len(jobs), desc=f"robustness {config.name}", unit="run") as bar:
        if args.workers <= 1:
            import torch

            threads = torch.get_num_threads()
            _init_worker(args.threads)
            try:
                for job in jobs:
                    store.add(_monai_run(*job))
                    bar.update()
            finally:
                torch.set_num_threads(threads)
            return
        failures = []
        with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(args.threads,)) as pool:
            # Every finished run is stored even when another fails; the first failure is raised at the end.
            for future in as_completed([pool.submit(_monai_run, *job) for job in jobs]):
                try:
                    store.add(future.result())
                except Exception as err:  # noqa: BLE001 - reported and re-raised below
                    failures.append(err)
                    print(f"run failed: {err!r}", file=sys.stderr)
                bar.update()
    if failures:
        raise failures[0]


def run_nnunet(todo: list[tuple[str, str, int]], family, config: StudyConfig, args, store: ResultStore) -> None:
    from robustness_lib.nnunet_engine import NnUNetStudy

    study = NnUNetStudy(family, config, args.work_dir / "nnunet", device=args.device)
    for setting, loss, seed in tqdm(todo, desc=f"robustness {config.name} (nnU-Net)", unit="run"):
        record = study.run(setting, loss, seed)
        record["machine"] = machine_description(args.device)
        store.add(record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.summarize:
            md, png = summarize(args.out)
            print(f"wrote {md} and {png}")
            return 0
        config = get_config(args.config)
        engine = args.engine or config.engine
        # The ablation trains on the same data as its base configuration: same default work folder.
        args.work_dir = args.work_dir or Path(tempfile.gettempdir()) / "tloss-nnunet-robustness" / config.name
        if args.nu_lr is not None:
            if engine != "monai":
                raise InputError("--nu-lr applies to the monai engine only (nnU-Net's trainers fix nu's lr)")
            if not args.nu_lr > 0:
                raise InputError(f"--nu-lr must be > 0, got {args.nu_lr}")
            config = dataclasses.replace(config, name=f"{config.name}_nulr{args.nu_lr:g}", nu_lr=args.nu_lr)
        for name in args.settings:
            parse_setting(name)  # names the malformed ones
        bad = [name for name in args.settings if name not in SETTING_NAMES]
        if bad:
            raise InputError(f"unknown setting(s) {bad}; the study's grid is {', '.join(SETTING_NAMES)}")
        unknown = sorted(set(args.losses) - set(LOSSES))
        if unknown:
            raise InputError(f"unknown loss(es) {unknown}; choose from {tuple(LOSSES)}")
        seeds = args.seeds if args.seeds is not None else list(config.seeds)
        store = ResultStore.open(args.out, args.resume)
        done = store.done()
        todo = [r for r in plan_runs(args.settings, args.losses, seeds) if (engine, config.name, *r) not in done]
        print(f"{len(todo)} run(s) to do ({len(done)} already in {args.out}); engine {engine}, config {config.name}")
        if todo:
            from robustness_lib.data import prepare_family

            family = prepare_family(args.work_dir, config, args.release, verify=args.verify_datasets,
                                    workers=args.data_workers)
            (run_monai if engine == "monai" else run_nnunet)(todo, family, config, args, store)
        md, png = summarize(args.out)
        print(md.read_text())
        print(f"wrote {args.out}, {md} and {png}")
        return 0
    except InputError as err:
        print(f"robustness.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
