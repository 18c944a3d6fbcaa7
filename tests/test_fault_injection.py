"""Faults injected into the real command line (issues 14 and 22): ``noise``, ``convert`` and ``export-stock``
killed (SIGKILL), interrupted once or twice (SIGINT) at seeded random moments, the signal sent to the command's
PID or, as a terminal's Ctrl-C is, to its whole process group; then run again.

After the re-run: outputs byte-identical to an uninterrupted run, no hidden leftovers, no process of the run alive
5 s after it ended, sources and a user's file beside the output unchanged; the interrupted run printed no
traceback and, when interrupted, ended with one "interrupted" line and exit code 130.
``python -m benchmarks.fault_injection`` runs the long version (hundreds, ``suspects`` too);
``tests/test_interrupts_suspects.py`` covers ``suspects`` in the suite.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.fault_lib import FAULTS, TARGETS, Scenario, inject, summary
from benchmarks.fault_scenarios import prepare

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="finds survivors through /proc")

COMMANDS = ("noise", "convert", "export")


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> dict[str, Scenario]:
    work = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(len(COMMANDS)) as threads:
        return dict(zip(COMMANDS, threads.map(lambda command: prepare(command, work / command), COMMANDS)))


def test_every_command_and_fault_loses_nothing_and_leaves_nothing(scenarios, tmp_path):
    rng = random.Random(14)
    # Every command x fault once, landing while the command works (the benchmark also hits start and end); the
    # targets alternate, so each command meets both.
    plan = [(command, fault, TARGETS[i % len(TARGETS)], rng.uniform(0.1, 0.5) * scenarios[command].seconds,
             rng.uniform(0.02, 0.3))
            for i, (command, fault) in enumerate((c, f) for c in COMMANDS for f in FAULTS)]
    with ThreadPoolExecutor(3) as threads:
        records = list(threads.map(
            lambda p: inject(scenarios[p[0]], p[1], p[3], tmp_path / p[0], gap=p[4], target=p[2]), plan))
    failed = [asdict(r) for r in records if not r.ok]
    assert not failed, json.dumps(failed, indent=1)
    counts = summary(records)
    assert counts["injected"] == 9 and counts["took_effect"] >= 6, counts
    assert {r.target for r in records} == set(TARGETS)
