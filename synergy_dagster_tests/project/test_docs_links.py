"""Every relative link of README.md and docs/ points to a file that exists, and every ``#anchor`` to a
heading of that file (anchors as GitHub derives them from headings: the GFM "anchorizer" of
comrak, https://docs.rs/comrak, ``Anchorizer``: lower case, characters other than letters, digits,
spaces, ``-`` and ``_`` dropped, each space a ``-``, a repeated anchor suffixed ``-1``, ``-2``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`]*`")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line without code spans) of every line outside fenced code blocks."""
    out, fenced = [], False
    for n, line in enumerate(text.split("\n"), start=1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, CODE_SPAN.sub("", line)))
    return out


def anchor(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings (fenced code skipped; a code span's text counts, its
    backticks do not)."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").split("\n"):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = anchor(m.group(1))
            n = seen.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in _prose_lines(path.read_text(encoding="utf-8")):
        out += [(n, m.group(1)) for m in LINK.finditer(line)]
        out += [(n, m.group(1)) for m in IMAGE.finditer(line)]
    return out


def broken(path: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for n, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, frag = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{n}: {target}"
        if not dest.exists():
            bad.append(f"{where} (no such file)")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"{where} (no heading with anchor #{frag} in {dest.relative_to(root)})")
    return bad


def test_the_pages_exist() -> None:
    assert (ROOT / "README.md").exists() and (ROOT / "docs" / "index.md").exists()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert not broken(page), "broken links:\n" + "\n".join(broken(page))


def test_checker_catches_a_missing_file_and_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## The store: DuckDB, `DuckLake`\n", encoding="utf-8")
    page.write_text(
        "# Page\n\n[ok](other.md#the-store-duckdb-ducklake) [self](#page) [web](https://x.org/a)\n"
        "[gone](missing.md) [bad anchor](other.md#the-store)\n"
        "```\n[in code](nowhere.md)\n```\n`[in span](nowhere.md)`\n",
        encoding="utf-8",
    )
    bad = broken(page, root=tmp_path)
    assert [b.split(": ", 1)[1] for b in bad] == [
        "missing.md (no such file)",
        "other.md#the-store (no heading with anchor #the-store in other.md)",
    ]


def test_anchor_follows_github() -> None:
    assert anchor("The metadata store: one DuckDB file, or DuckLake for many writers") == (
        "the-metadata-store-one-duckdb-file-or-ducklake-for-many-writers"
    )
    assert anchor("Inputs of the real streamflow study (`studies/real.yaml`)") == (
        "inputs-of-the-real-streamflow-study-studiesrealyaml"
    )
    assert anchor("This - and that") == "this---and-that"
