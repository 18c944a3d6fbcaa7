"""Run the check's sections one by one and keep what each found, or its error, in one JSON and one Markdown file.

JSON layout::

    {"meta": {device, torch, smoke, started, load_average, ...},
     "sections": {name: {"status": "ok" | "failed" | "skipped", "seconds", "budget_s", "over_budget",
                         "checks": {check: bool}, "result": {...}, "error": "Type: message", "traceback"}}}

A section is "failed" when it raised or when one of its ``checks`` is False; the others still run. Both files
are rewritten after every section, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

__all__ = ["Record"]


class Record:
    """The results of one run: ``run(name, function)`` adds a section, ``write()`` saves both files."""

    def __init__(self, json_path: Path, meta: dict, markdown: Callable[[dict], str]) -> None:
        self.json_path = Path(json_path)
        self.markdown_path = self.json_path.with_suffix(".md")
        self.data = {"meta": meta, "sections": {}}
        self._markdown = markdown

    def run(self, name: str, budget_s: float, function: Callable[[], dict]) -> dict:
        """Run ``function`` (returns ``{"result": ..., "checks": {...}}``), time it, record it, print one line."""
        print(f"== {name}: budget {budget_s:.0f} s", flush=True)
        start = time.perf_counter()
        entry: dict = {"budget_s": budget_s}
        try:
            found = function()
            entry.update(result=found.get("result", {}), checks=found.get("checks", {}))
            failed = [check for check, ok in entry["checks"].items() if not ok]
            entry["status"] = "failed" if failed else "ok"
            if failed:
                entry["error"] = f"checks failed: {', '.join(failed)}"
        except Exception as error:  # noqa: BLE001 -- one section's failure must not lose the others
            entry.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
        entry["seconds"] = round(time.perf_counter() - start, 2)
        entry["over_budget"] = entry["seconds"] > budget_s
        self.data["sections"][name] = entry
        self.write()
        print(f"== {name}: {entry['status']} in {entry['seconds']:.1f} s (budget {budget_s:.0f} s"
              f"{', OVER' if entry['over_budget'] else ''})" + (f": {entry['error']}" if "error" in entry else ""),
              flush=True)
        return entry

    def skip(self, name: str, reason: str) -> None:
        self.data["sections"][name] = {"status": "skipped", "error": reason}
        self.write()

    @property
    def ok(self) -> bool:
        return all(s["status"] != "failed" for s in self.data["sections"].values())

    def write(self) -> None:
        self.data["meta"]["total_seconds"] = round(sum(s.get("seconds", 0) for s in self.data["sections"].values()), 2)
        self.data["meta"]["load_average_end"] = round(os.getloadavg()[0], 2)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        self.markdown_path.write_text(self._markdown(self.data))
