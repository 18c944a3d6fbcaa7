"""README.md and docs/ stay true to the code.

- every ```python block runs as written (fresh namespace, from a temporary folder);
- every relative link resolves to a file, and a ``#fragment`` into a Markdown page to one of its headings;
- every ``tloss-nnunet ...`` line of a ```bash block parses with the real command-line parser, every
  ``python -m benchmarks.X`` names a study module, every ``scripts/*.sh`` exists;
- every nnU-Net trainer the pages name is a class defined by this project, by nnU-Net or by a page's snippet;
- docs/reference/cli.md has one section per command and no other, each naming every option of its command;
  docs/how-to/run-demo.md names every option of the demo;
- the README stays a landing page (<= 200 lines).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
# a tloss-nnunet command: at a line's start (after VAR=value assignments), inside $( ), or after ; && | do
CLI_CALL = re.compile(r"(?:^(?:\w+=\S*\s+)*|\$\(|[;&|]\s*|\bdo\s+)(tloss-nnunet\b[^)#;&|\n]*)", re.M)
TRAINER = re.compile(r"\bnnUNetTrainer\w*")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _blocks(language: str) -> list[tuple[str, int, str]]:
    """(page, line of the fence, code) of every fenced block in that language, over all pages."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                found.append((_rel(page), text.count("\n", 0, match.start()) + 1, match.group(2)))
    return found


PYTHON_BLOCKS = _blocks("python")
BASH_BLOCKS = _blocks("bash")


def _prose(text: str) -> str:
    """The page without fenced blocks and inline code (where brackets are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the top-level parser and every subcommand, depth first."""
    yield path, parser
    for name, sub in _subparsers(parser).items():
        yield from _commands(sub, (*path, name))


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions if not isinstance(a, argparse._SubParsersAction) for s in a.option_strings]


def _mentions(text: str, token: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def test_there_is_something_to_check():
    assert len(PAGES) >= 15 and len(PYTHON_BLOCKS) >= 8 and len(BASH_BLOCKS) >= 10


def test_readme_is_a_landing_page():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page, line, code", PYTHON_BLOCKS, ids=[f"{p}:{n}" for p, n, _ in PYTHON_BLOCKS])
def test_python_block_runs(page, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{page} (block at line {line})", "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no heading '#{fragment}' in {_rel(resolved)}")
    assert not broken, f"{_rel(page)}: " + "; ".join(broken)


def _cli_calls() -> list[tuple[str, int, str]]:
    calls = []
    for page, line, code in BASH_BLOCKS:
        for call in CLI_CALL.findall(code.replace("\\\n", " ")):
            calls.append((page, line, call.strip()))
    return calls


CLI_CALLS = _cli_calls()


def test_documented_command_lines_parse(capsys):
    from tloss_nnunet.cli import build_parser

    assert len(CLI_CALLS) >= 10
    bad = []
    for page, line, call in CLI_CALLS:
        try:
            build_parser().parse_args(shlex.split(call)[1:])
        except SystemExit as stop:
            if stop.code != 0:  # 0: --help
                bad.append(f"{page} (block at line {line}): {call!r}: {capsys.readouterr().err.strip()}")
    assert not bad, "\n".join(bad)


def test_documented_studies_and_scripts_exist():
    missing = []
    for page, line, code in BASH_BLOCKS:
        for study in re.findall(r"python -m benchmarks\.(\w+)", code):
            if not (
                (ROOT / "benchmarks" / f"{study}.py").is_file()
                or (ROOT / "benchmarks" / study / "__main__.py").is_file()
            ):
                missing.append(f"{page}:{line}: benchmarks.{study}")
        for script in re.findall(r"(?<![\w/])((?:scripts|benchmarks)/[\w/.-]+\.sh)\b", code):
            if not (ROOT / script).is_file():
                missing.append(f"{page}:{line}: {script}")
    assert not missing


def _defined_trainers() -> set[str]:
    """Class names starting with nnUNetTrainer in this project's sources, nnU-Net's, and the pages' snippets."""
    sources = [*ROOT.joinpath("tloss_nnunet").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]
    nnunet = importlib.util.find_spec("nnunetv2")
    sources += [*Path(next(iter(nnunet.submodule_search_locations))).rglob("*.py")]
    texts = [p.read_text(errors="replace") for p in sources] + [code for _, _, code in PYTHON_BLOCKS]
    return {name for text in texts for name in re.findall(r"^\s*class (nnUNetTrainer\w*)", text, re.M)}


def test_named_trainers_exist():
    defined = _defined_trainers()
    assert "nnUNetTrainer" in defined and "nnUNetTrainerTLoss" in defined
    unknown = set()
    for page in PAGES:
        # a model folder is <trainer>__<plans>__<configuration>; "_5epochs" etc. in prose abbreviate a variant
        for name in TRAINER.findall(page.read_text()):
            trainer = name.split("__")[0]
            if trainer not in defined:
                unknown.add(f"{_rel(page)}: {trainer}")
    assert not unknown, sorted(unknown)


def _sections(page: Path) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", page.read_text(), flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def test_cli_reference_covers_every_command_and_option():
    from tloss_nnunet.cli import build_parser

    sections = _sections(ROOT / "docs" / "reference" / "cli.md")
    commands = {" ".join(("tloss-nnunet", *path)): parser for path, parser in _commands(build_parser())}
    assert set(sections) == set(commands), "sections of cli.md vs the parser's commands"
    missing = [
        f"{title}: {option}"
        for title, parser in commands.items()
        for option in (*_option_strings(parser), *_subparsers(parser))
        if not _mentions(sections[title], option)
    ]
    assert not missing, (
        "not in docs/reference/cli.md (regenerate with COLUMNS=100 tloss-nnunet CMD --help): " + ", ".join(missing)
    )


def test_demo_page_names_every_demo_option():
    from tloss_nnunet.repro.demo import build_parser

    text = (ROOT / "docs" / "how-to" / "run-demo.md").read_text()
    missing = [o for o in _option_strings(build_parser()) if o not in ("-h", "--help") and not _mentions(text, o)]
    assert not missing, f"docs/how-to/run-demo.md does not mention {missing}"
