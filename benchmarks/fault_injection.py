"""Kill and interrupt ``noise``, ``convert`` and ``export-stock`` at random moments, many times, and count.

    python -m benchmarks.fault_injection --n 210            # 70 per command, faults cycling kill/int/int2
    python -m benchmarks.fault_injection --n 30 --commands noise --json results.json

Each injection runs the real ``tloss-nnunet`` command on tiny synthetic inputs, sends SIGKILL, one SIGINT or
two SIGINTs after a random delay (uniform in [0, 1.2 x the clean run's duration]), then runs the same command
again and checks (``fault_lib.inject``): outputs byte-identical to an uninterrupted run, no hidden leftovers,
no surviving child processes (30 s after the run ended; ``max_linger_s`` says how long the slowest took to go),
sources unchanged, no traceback, an interrupt ends with one "interrupted" line.
Linux only (survivors are found through /proc).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from benchmarks.fault_lib import COMMANDS, FAULTS, inject, prepare, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=210, help="injections in all (default: %(default)s)")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the delays (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="--workers of noise/convert (default: 2)")
    parser.add_argument("--verify", action="store_true", help="convert with nnU-Net's integrity check (slow)")
    parser.add_argument("--jobs", type=int, default=3, help="injections run at the same time (default: 3)")
    parser.add_argument("--json", metavar="PATH", help="also write every injection's record here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    records = []
    with tempfile.TemporaryDirectory(prefix="tloss-faults-") as tmp:
        work = Path(tmp)
        scenarios = {c: prepare(c, work / c, workers=args.workers, verify=args.verify) for c in args.commands}
        print("clean runs: " + ", ".join(f"{c} {s.seconds:.1f} s" for c, s in scenarios.items()), file=sys.stderr)
        plan = []
        for i in range(args.n):  # drawn up front: the same seed injects the same faults, whatever --jobs
            command = args.commands[i % len(args.commands)]
            fault = FAULTS[(i // len(args.commands)) % len(FAULTS)]
            plan.append((command, fault, rng.uniform(0, 1.2 * scenarios[command].seconds), rng.uniform(0.02, 0.5)))
        with ThreadPoolExecutor(max(1, args.jobs)) as threads:
            runs = threads.map(lambda p: inject(scenarios[p[0]], p[1], p[2], work / p[0], gap=p[3]), plan)
            for record in tqdm(runs, total=len(plan), desc="injecting", unit="fault"):
                records.append(record)
                if not record.ok:
                    tqdm.write(f"NOT OK: {json.dumps({k: v for k, v in asdict(record).items() if v})}")
    counts = summary(records)
    for command in args.commands:
        mine = [r for r in records if r.command == command]
        print(f"{command}: " + ", ".join(f"{k}={v}" for k, v in summary(mine).items()))
    print("total: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n")
    bad = {k: v for k, v in counts.items() if k not in ("injected", "landed", "took_effect", "max_linger_s") and v}
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
