"""Kill and interrupt ``noise``, ``convert``, ``export-stock``, ``suspects`` and ``repair`` at random moments, many
times, and count.

    python -m benchmarks.fault_injection --n 264 --n-suspects 48 --json benchmarks/results/fault_injection.json
    python -m benchmarks.fault_injection ... --resume      # goes on from the records already in --json
    python -m benchmarks.fault_injection --json ... --table-only   # the summary table (.md beside the .json)

Each injection runs the real ``tloss-nnunet`` command on tiny inputs (``suspects``: a tiny model trained with the
stock nnU-Net commands in the preparation; ``repair``: an audit of it), sends SIGKILL, one SIGINT or two SIGINTs
after a random delay (uniform in [0, 1.2 x the clean run's duration]: start-up, pool start, work, publishing) to
the command's process group, as a terminal's Ctrl-C does, or to its PID; then runs the same command again and checks
(``fault_lib.inject``): outputs byte-identical to an uninterrupted run, no hidden leftovers, a user's files beside
(and for ``suspects`` inside) the output untouched, no process of the run alive 5 s after it ended, sources
unchanged, no traceback, an interrupt ends with one "interrupted" line and exit 130. The plan is drawn up front
from the seed, so ``--resume`` runs exactly the injections not yet recorded. Linux only (/proc).
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

from benchmarks.fault_lib import COMMANDS, FAULTS, TARGETS, Injection, inject, interrupted_before_start, summary
from benchmarks.fault_scenarios import prepare, train_tiny_model

LIGHT = tuple(c for c in COMMANDS if c != "suspects")


def plan(n: int, n_suspects: int, commands: list[str], seconds: dict[str, float], seed: int) -> list[tuple]:
    """(index, command, fault, target, delay, gap) of every injection: commands, faults and targets cycle."""
    rng = random.Random(seed)
    light = [c for c in commands if c in LIGHT]
    n, n_suspects = (n if light else 0), (n_suspects if "suspects" in commands else 0)
    order, taken = [], 0
    for i in range(n + n_suspects):  # suspects spread evenly among the others (a partial run has some of each)
        if (i + 1) * n_suspects // (n + n_suspects) > i * n_suspects // (n + n_suspects):
            order.append("suspects")
        else:
            order.append(light[taken % len(light)])
            taken += 1
    counts: dict[str, int] = {}
    rows = []
    for index, command in enumerate(order):
        k = counts[command] = counts.get(command, -1) + 1
        rows.append((index, command, FAULTS[k % len(FAULTS)], TARGETS[(k // len(FAULTS)) % len(TARGETS)],
                     rng.uniform(0, 1.2 * seconds[command]), rng.uniform(0.02, 0.5)))
    return rows


def markdown(records: list[dict]) -> str:
    """The summary table (one row per command and target, then the total)."""
    keys = [k for k in summary([]) if k != "injected"]
    lines = ["| command | target | injected | " + " | ".join(keys) + " |", "|---" * (len(keys) + 3) + "|"]
    groups = sorted({(r["command"], r["target"]) for r in records}) + [("all", "all")]
    for command, target in groups:
        mine = [Injection(**r) for r in records if command == "all" or (r["command"], r["target"]) == (command, target)]
        counts = summary(mine)
        lines.append(f"| {command} | {target} | {counts['injected']} | " + " | ".join(str(counts[k]) for k in keys)
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=264,
                        help="injections into noise/convert/export/repair (default: %(default)s)")
    parser.add_argument("--n-suspects", type=int, default=48, help="injections into suspects (default: %(default)s)")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the delays (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="--workers of noise/convert (default: 2)")
    parser.add_argument("--verify", action="store_true", help="convert with nnU-Net's integrity check (slow)")
    parser.add_argument("--jobs", type=int, default=1, help="injections run at the same time (default: 1)")
    parser.add_argument("--json", metavar="PATH", help="write every injection's record here (after each one)")
    parser.add_argument("--resume", action="store_true", help="keep the records in --json, run the rest")
    parser.add_argument("--table-only", action="store_true", help="only write the summary table of --json")
    args = parser.parse_args(argv)
    path = Path(args.json) if args.json else None
    done = json.loads(path.read_text()) if (args.resume or args.table_only) and path and path.is_file() else []
    # Older records, and the rule of what counts as "before start": recomputed from each record's stderr.
    records = {r["index"]: {**r, "before_start": interrupted_before_start(r.get("stderr", ""))} for r in done
               if "index" in r}
    with tempfile.TemporaryDirectory(prefix="tloss-faults-") as tmp:
        if args.table_only:
            args.commands = []
        work = Path(tmp)
        model = train_tiny_model(work / "nnunet") if {"suspects", "repair"} & set(args.commands) else None
        scenarios = {c: prepare(c, work / c, workers=args.workers, verify=args.verify, model=model)
                     for c in args.commands}
        print("clean runs: " + ", ".join(f"{c} {s.seconds:.1f} s" for c, s in scenarios.items()), file=sys.stderr)
        rows = [r for r in plan(args.n, args.n_suspects, args.commands, {c: s.seconds for c, s in scenarios.items()},
                                args.seed) if r[0] not in records]

        def one(row: tuple) -> dict:
            index, command, fault, target, delay, gap = row
            return {"index": index, **asdict(inject(scenarios[command], fault, delay, work / command, gap, target))}

        with ThreadPoolExecutor(max(1, args.jobs)) as threads:
            for record in tqdm(threads.map(one, rows), total=len(rows), desc="injecting", unit="fault"):
                records[record["index"]] = record
                if not Injection(**{k: v for k, v in record.items() if k != "index"}).ok:
                    tqdm.write(f"NOT OK: {json.dumps({k: v for k, v in record.items() if v})}")
                if path:
                    path.write_text(json.dumps([records[i] for i in sorted(records)], indent=1) + "\n")
    every = [{k: v for k, v in records[i].items() if k != "index"} for i in sorted(records)]
    table = markdown(every)
    print(table)
    if path:
        path.with_suffix(".md").write_text(table)
    counts = summary([Injection(**r) for r in every])
    bad = {k: v for k, v in counts.items() if k not in ("injected", "landed", "took_effect", "max_linger_s") and v}
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
