"""The study-file reference (docs/reference/study-file.md) is generated from the schema and kept fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from synergy_dagster.study_file import _Strict
from synergy_dagster.study_reference import (
    COMMAND,
    REFERENCE_PATH,
    main,
    missing_descriptions,
    model_rows,
    render,
    study_file_reference,
)


def test_committed_reference_is_current() -> None:
    assert REFERENCE_PATH.exists(), f"{REFERENCE_PATH} is missing: run `{COMMAND}`"
    committed = REFERENCE_PATH.read_text(encoding="utf-8")
    assert committed == study_file_reference(), (
        f"{REFERENCE_PATH} is stale (the study-file schema changed): run `{COMMAND}` and commit it"
    )


# -- the generator on a small schema holding every shape it must walk ------------------------------


class _Period(_Strict):
    """A span of days."""

    start: str = Field(description="first day")
    end: str | None = Field(None, description="last day; default open")


class _Part(_Strict):
    """One part."""

    reader: Literal["a", "b"] = Field(description="how to read it")
    period: _Period = Field(description="when")
    options: dict[str, float] = Field(default_factory=dict, description="free options")


class _Circle(_Strict):
    """A round scheme."""

    kind: Literal["circle"] = "circle"
    radius: float = Field(1.0, gt=0, description="radius in km")


class _Square(_Strict):
    """A square scheme."""

    kind: Literal["square"] = "square"
    side: int = Field(2, ge=1, le=9, description="side in cells")


class _Study(_Strict):
    """A toy study."""

    name: str = Field(description="its name")
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0], description="seeds"
    )
    extra: _Period | None = Field(None, description="an optional nested block")
    parts: dict[Literal["left", "right"], _Part] = Field(description="per side")
    shapes: list[Annotated[_Circle | _Square, Field(discriminator="kind")]] = Field(
        default_factory=lambda: [_Circle()], description="the shapes"
    )
    undocumented: int = 3


def _rows() -> dict[str, tuple[str, str, str, str]]:
    return {r.key: (r.type, r.default, r.allowed, r.description) for r in model_rows(_Study)}


def test_every_shape_becomes_dotted_keys() -> None:
    rows = _rows()
    assert list(rows) == [
        "name",
        "seeds",
        "extra",
        "extra.start",
        "extra.end",
        "parts",
        "parts.<part>.reader",
        "parts.<part>.period",
        "parts.<part>.period.start",
        "parts.<part>.period.end",
        "parts.<part>.options",
        "shapes",
        "shapes[kind=circle]",
        "shapes[kind=circle].radius",
        "shapes[kind=square]",
        "shapes[kind=square].side",
        "undocumented",
    ]


def test_rows_say_type_default_allowed_and_description() -> None:
    rows = _rows()
    assert rows["name"] == ("text", "required", "", "its name")
    assert rows["seeds"] == ("list of integer (>= 0)", "`[0]`", "at least 1 item", "seeds")
    assert rows["extra"][:2] == ("mapping or null", "unset")
    assert rows["parts"][2] == "keys: `left` \\| `right`"
    assert rows["parts.<part>.reader"][2] == "`a` \\| `b`"
    assert rows["parts.<part>.options"][:2] == ("mapping of text to number", "`{}`")
    assert rows["shapes"][1] == "`[{kind: circle, radius: 1.0}]`"
    assert rows["shapes[kind=square]"][3] == "A square scheme."
    assert rows["shapes[kind=square].side"] == ("integer", "`2`", ">= 1; <= 9", "side in cells")
    assert rows["shapes[kind=circle].radius"][2] == "> 0"


def test_missing_descriptions_are_listed() -> None:
    assert missing_descriptions(_Study) == ["undocumented"]


def test_page_has_one_section_per_nested_key() -> None:
    page = render(_Study)
    assert "## Top-level keys" in page and "## `parts`" in page and "## `shapes`" in page
    assert "| `undocumented` | integer | `3` |  | (no description yet) |" in page


def test_check_flags_a_stale_page_and_write_fixes_it(tmp_path: Path) -> None:
    out = tmp_path / "reference" / "study-file.md"
    assert main(["--check", "--output", str(out)]) == 1  # missing
    assert main(["--output", str(out)]) == 0
    assert main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8").replace("| `name` |", "| `title` |"), encoding="utf-8")
    assert main(["--check", "--output", str(out)]) == 1
