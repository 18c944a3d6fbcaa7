"""Faults injected into the real command line (issue 14): ``noise``, ``convert`` and ``export-stock`` killed
(SIGKILL), interrupted once or twice (SIGINT) at seeded random moments, then run again.

After the re-run: outputs byte-identical to an uninterrupted run, no hidden leftovers, no surviving child
process, sources unchanged; the interrupted run printed no traceback and, when interrupted, ended with one
"interrupted" line and exit code 130. ``python -m benchmarks.fault_injection`` runs the long version (hundreds).
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.fault_lib import COMMANDS, FAULTS, Scenario, inject, prepare, summary

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="finds survivors through /proc")


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> dict[str, Scenario]:
    work = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(len(COMMANDS)) as threads:
        return dict(zip(COMMANDS, threads.map(lambda command: prepare(command, work / command), COMMANDS)))


def test_every_command_and_fault_loses_nothing_and_leaves_nothing(scenarios, tmp_path):
    rng = random.Random(14)
    # Every command x fault once, landing while the command works (the benchmark also hits start and end).
    plan = [(command, fault, rng.uniform(0.2, 0.9) * scenarios[command].seconds, rng.uniform(0.02, 0.3))
            for command in COMMANDS for fault in FAULTS]
    with ThreadPoolExecutor(3) as threads:
        records = list(threads.map(
            lambda p: inject(scenarios[p[0]], p[1], p[2], tmp_path / p[0], gap=p[3]), plan))
    failed = [asdict(r) for r in records if not r.ok]
    assert not failed, json.dumps(failed, indent=1)
    counts = summary(records)
    assert counts["injected"] == 9 and counts["took_effect"] >= 6, counts
