"""Fault injection on the real command line: run a command, hit it with SIGKILL / one SIGINT / two SIGINTs at a
random moment, sent to its PID or, as a terminal's Ctrl-C is, to its whole process group; run it again, and
check what issues 14 and 22 promise.

Shared by ``tests/test_fault_injection.py`` (a few injections) and ``benchmarks/fault_injection.py`` (hundreds).
Each command works on tiny inputs prepared once (:func:`benchmarks.fault_scenarios.prepare`); every run gets
a unique ``TLOSS_FAULT_TAG`` in its environment, which every process it starts inherits, so survivors are found by
reading ``/proc/*/environ`` (Linux). Each command starts in a session of its own (``start_new_session``), so a
group signal reaches it and every process it starts, never the harness.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# A process started in the background by a non-interactive shell (`cmd &`, CI runners) ignores SIGINT, and
# children inherit an ignored signal: the commands under test would never see the injected Ctrl-C. A handled
# one is reset to the default at exec, so handle it here (importing happens in the main thread).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

COMMANDS = ("noise", "convert", "export", "suspects", "repair")
FAULTS = ("kill", "int", "int2")
TARGETS = ("group", "pid")  # os.killpg (a terminal's Ctrl-C) or the main process alone
TAG = "TLOSS_FAULT_TAG"
HANG_SECONDS = 120.0
#: A frame of the command's entry point. A Ctrl-C whose traceback lacks it landed while Python was still importing
#: (the interpreter's start-up, the console script's first import), before ``tloss_nnunet.cli.main`` ran and set
#: up its handling: Python's own traceback then, counted apart as "interrupted_before_start".
ENTRY_FRAME = re.compile(r'tloss_nnunet/cli\.py", line \d+, in main\b')
ORPHAN_SECONDS = 5.0  # a process of the run still alive this long after the run ended is an orphan
GRACE_SECONDS = 30.0  # ... and is killed after this long (linger says when the last one went)
#: Hidden names a finished output may hold: convert's per-dataset marker, the lock of suspects' predictions.
ALLOWED_HIDDEN = (".tloss_convert.json", ".suspects.lock")
#: Not compared with the clean run: nnU-Net's console log (appended by each run) and its record of the call
#: (output path, the cases still to predict), both in each ``suspects`` prediction folder.
UNCOMPARED = ("predict.log", "predict_from_raw_data_args.json")
#: What a traceback (or a worker's partial one) leaves in stderr.
TRACEBACK_WORDS = ("Traceback", "Bad file descriptor", "KeyboardInterrupt", "EOFError")
FOREIGN = "notes-of-the-user.txt"  # a file the tool did not write, next to its output (and inside, see Scenario)


def cli() -> list[str]:
    """The installed ``tloss-nnunet`` script of this interpreter (``python -m tloss_nnunet`` without one)."""
    script = Path(sys.executable).parent / "tloss-nnunet"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tloss_nnunet"]


@dataclass
class Scenario:
    """One command on prepared inputs: ``argv(out)`` writes into ``out``."""

    command: str
    sources: Path
    args: list[str]
    seconds: float = 0.0  # duration of an uninterrupted run (faults land in [0, 1.2 x this])
    reference: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of a clean run
    env: dict[str, str] = field(default_factory=dict)  # added to the command's environment
    foreign_inside: bool = False  # the contract keeps a user's file inside the output folder (suspects -o DIR)

    def argv(self, out: Path) -> list[str]:
        return [*cli(), *(str(out) if a == "{out}" else a for a in self.args)]


def digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (but the user's file and appended logs)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in (FOREIGN, *UNCOMPARED)}


def tagged_processes(tag: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``TLOSS_FAULT_TAG=<tag>``."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":  # a zombie is dead already, waiting for init to reap it
                    found.append(int(entry))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _survivors(tag: str, grace: float = GRACE_SECONDS) -> tuple[list[str], float]:
    """(command lines of the processes of run ``tag`` still alive :data:`ORPHAN_SECONDS` after it ended, seconds
    until the last one went, at most ``grace``). Those still alive after ``grace`` are killed."""
    started = time.monotonic()
    orphans: list[int] = []
    while (alive := tagged_processes(tag)) and time.monotonic() - started < grace:
        if not orphans and time.monotonic() - started >= ORPHAN_SECONDS:
            orphans = alive
        time.sleep(0.1)
    linger = time.monotonic() - started
    survivors = []
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in orphans:
        try:
            survivors.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:  # gone meanwhile: still an orphan at ORPHAN_SECONDS
            survivors.append(str(pid))
    return survivors, linger


def _hidden_leftovers(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob(".*") if p.name not in ALLOWED_HIDDEN) \
        if out.exists() else []


@dataclass
class Injection:
    """What one injected fault did, and what the next run found."""

    command: str
    fault: str
    delay: float
    target: str = "pid"  # "group": os.killpg, as a terminal's Ctrl-C
    moment: float = 0.0  # delay / the clean run's duration (start-up, pools, prediction, publishing)
    returncode: int | None = None
    finished_first: bool = False  # the command was done before the fault landed
    hang: bool = False
    traceback: bool = False
    unclear: bool = False  # an interrupted run whose stderr did not end in one "interrupted" line
    before_start: bool = False  # Ctrl-C came while Python was still importing, before the command's main() ran
    orphans: int = 0
    survivors: list[str] = field(default_factory=list)  # command lines of the orphans
    linger: float = 0.0  # seconds until the last process of the run was gone
    torn: int = 0  # output files right after the fault that differ from the clean run's
    leftovers: list[str] = field(default_factory=list)
    changed: int = 0  # files lost, added or different after the re-run
    rerun_failed: bool = False
    sources_changed: bool = False
    foreign_touched: int = 0  # user's files (beside and, where kept, inside the output) changed or gone
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return not (self.hang or (self.traceback or self.unclear) and not self.before_start or self.orphans
                    or self.torn or self.leftovers or self.changed or self.rerun_failed or self.sources_changed
                    or self.foreign_touched)


def _run_tagged(argv: list[str], tag: str, stderr_path: Path, env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, **env, TAG: tag, "PYTHONUNBUFFERED": "1"}
    with open(stderr_path, "wb") as err:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)


def _send(process: subprocess.Popen, signum: int, target: str) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group can be gone while the main is a zombie
        os.killpg(process.pid, signum) if target == "group" else process.send_signal(signum)


def _place_foreign(scenario: Scenario, out: Path) -> dict[Path, bytes]:
    """A user's file next to the output and, where the contract keeps it, inside; path -> content."""
    files = {out.parent / f"{out.name}-{FOREIGN}": f"mine, beside {out.name}\n".encode()}
    if scenario.foreign_inside:
        files[out / FOREIGN] = b"mine, inside\n"
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def inject(scenario: Scenario, fault: str, delay: float, work: Path, gap: float = 0.1,
           target: str = "pid") -> Injection:
    """Start ``scenario`` into a fresh folder under ``work``, inject ``fault`` into ``target`` after ``delay`` s
    (``int2``: the second SIGINT ``gap`` s after the first), check, re-run."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"out-{uuid.uuid4().hex[:8]}"
    record = Injection(scenario.command, fault, round(delay, 3), target,
                       round(delay / max(scenario.seconds, 1e-9), 3))
    sources_before = digest(scenario.sources)
    foreign = _place_foreign(scenario, out)
    tag = uuid.uuid4().hex
    process = _run_tagged(scenario.argv(out), tag, work / f"{tag}.err", scenario.env)
    time.sleep(delay)
    record.finished_first = process.poll() is not None  # else the fault landed (and must take effect)
    if not record.finished_first:
        # A SIGKILL to the group kills every process at once; to the PID it is the test of orphans.
        _send(process, signal.SIGKILL if fault == "kill" else signal.SIGINT, target)
        if fault == "int2":
            time.sleep(gap)
            if process.poll() is None:
                _send(process, signal.SIGINT, target)
    try:
        record.returncode = process.wait(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        record.hang = True
        process.kill()
        record.returncode = process.wait()
    record.stderr = (work / f"{tag}.err").read_text(errors="replace")
    (work / f"{tag}.err").unlink()
    record.traceback = any(word in record.stderr for word in TRACEBACK_WORDS)
    record.before_start = interrupted_before_start(record.stderr)
    if fault != "kill" and not record.finished_first:
        lines = record.stderr.strip().splitlines()
        # 130 with one "... interrupted" line; a SIGINT before Python set up its handler ends it silently (-2).
        # 0: the interrupt came during the last instants, after the outputs were published (it is then ignored).
        record.unclear = not ((record.returncode == 130 and lines and lines[-1].endswith(": interrupted"))
                              or (record.returncode == -signal.SIGINT and not lines) or record.returncode == 0)
    record.survivors, record.linger = _survivors(tag)
    record.orphans = len(record.survivors)
    record.linger = round(record.linger, 1)
    after_fault = digest(out)
    record.torn = sum(1 for name, sha in after_fault.items()
                      if not Path(name).name.startswith(".") and scenario.reference.get(name, sha) != sha)
    if fault != "kill" and scenario.command != "convert":  # convert keeps its staging on purpose: it resumes
        record.leftovers += [f"after the fault: {name}" for name in _hidden_leftovers(out)]
    rerun = subprocess.run(scenario.argv(out), capture_output=True, text=True, timeout=600,
                           env={**os.environ, **scenario.env})
    record.rerun_failed = rerun.returncode != 0
    after = digest(out)
    record.changed = len(set(after) ^ set(scenario.reference)) + sum(
        1 for name in set(after) & set(scenario.reference) if after[name] != scenario.reference[name])
    record.leftovers += _hidden_leftovers(out)
    record.sources_changed = digest(scenario.sources) != sources_before
    record.foreign_touched = sum(not p.is_file() or p.read_bytes() != content for p, content in foreign.items())
    for path in foreign:
        path.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    return record


def interrupted_before_start(stderr: str) -> bool:
    """The run's traceback is Python's own for a Ctrl-C that landed while it was still importing, before
    ``tloss_nnunet.cli.main`` ran (no frame of it), and not one Python printed from a finalizer ("Exception
    ignored in ...", which can happen at any time)."""
    return ("KeyboardInterrupt" in stderr and not ENTRY_FRAME.search(stderr)
            and "Exception ignored" not in stderr)


def summary(records: list[Injection]) -> dict[str, int]:
    """The counts the issue asks for."""
    return {
        "injected": len(records),
        "landed": sum(not r.finished_first for r in records),
        "took_effect": sum(r.returncode in (130, -signal.SIGINT, -signal.SIGKILL) for r in records),
        "lost_or_changed_outputs": sum(bool(r.changed or r.torn or r.rerun_failed) for r in records),
        "leftovers": sum(bool(r.leftovers) for r in records),
        "orphans": sum(r.orphans for r in records),
        "tracebacks": sum(r.traceback and not r.before_start for r in records),
        "unclear_interrupts": sum(r.unclear and not r.before_start for r in records),
        "interrupted_before_start": sum(r.before_start for r in records),
        "hangs": sum(r.hang for r in records),
        "max_linger_s": round(max((r.linger for r in records), default=0.0)),
        "sources_changed": sum(r.sources_changed for r in records),
        "foreign_touched": sum(r.foreign_touched for r in records),
    }
