"""The reference of every study-file key, generated from the schema (``StudyFile``).

The study file's pydantic models are the only description of a study's settings, so its reference
is derived from them, never written by hand: one row per dotted key (``budget.max_updates``,
``domains.<domain>.periods.train.start``, ``stratification.schemes[kind=kmeans].k``) with its type,
default, allowed values and the ``Field(description=...)``. The walk is general: nested models,
optional models, mappings of models (``<domain>``), lists of models and discriminated unions are
recursed into, so a key added to the schema appears here without touching this module.

``python -m synergy_dagster.study_reference`` writes ``docs/reference/study-file.md``;
``--check`` exits 1 when that file differs from what the schema gives (the test suite does the same).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from synergy_dagster.io_utils import atomic_write_text

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "docs" / "reference" / "study-file.md"
COMMAND = "python -m synergy_dagster.study_reference"
NO_DESCRIPTION = "(no description yet)"


@dataclass(frozen=True)
class KeyRow:
    """One key of the schema: ``key`` dotted from the file's top; ``described`` whether the text came
    from the field's own ``description`` (a model's docstring may stand in for a mapping's row);
    ``variant`` for the row of one kind of a union's item (described by its model's docstring)."""

    key: str
    type: str
    default: str
    allowed: str
    description: str
    described: bool
    variant: bool = False


# -- types -----------------------------------------------------------------------------------------


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X, m1, m2]`` -> (X, [m1, m2]), nested Annotated flattened; else (tp, [])."""
    metadata: list[Any] = []
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        tp, metadata = args[0], [*metadata, *args[1:]]
    return tp, metadata


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _union_parts(tp: Any) -> list[Any]:
    return list(get_args(tp)) if _is_union(tp) else [tp]


def _without_none(tp: Any) -> tuple[Any, bool]:
    """The type with ``None`` taken out of a union, and whether ``None`` was in it."""
    parts = _union_parts(tp)
    rest = [p for p in parts if p is not type(None)]
    if len(rest) == len(parts):
        return tp, False
    return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007


def _constraint_text(metadata: list[Any]) -> list[str]:
    """Bounds, lengths and patterns of ``Field(...)``/annotated-types metadata, in words."""
    out: list[str] = []
    for m in metadata:
        if isinstance(m, FieldInfo):  # an inner ``Field(ge=1)`` inside ``Annotated``
            out += _constraint_text(list(m.metadata))
            continue
        for cls, attr, sign in (
            (annotated_types.Ge, "ge", ">="),
            (annotated_types.Gt, "gt", ">"),
            (annotated_types.Le, "le", "<="),
            (annotated_types.Lt, "lt", "<"),
        ):
            if isinstance(m, cls):
                out.append(f"{sign} {getattr(m, attr)}")
        if isinstance(m, annotated_types.MinLen):
            out.append(f"at least {m.min_length} item{'s' if m.min_length != 1 else ''}")
        if isinstance(m, annotated_types.MaxLen):
            out.append(f"at most {m.max_length} items")
        pattern = getattr(m, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches `{pattern}`")
    return out


def _literal_values(tp: Any) -> list[Any] | None:
    tp, _ = _strip_annotated(tp)
    return list(get_args(tp)) if get_origin(tp) is Literal else None


def type_text(tp: Any) -> str:
    """A type as a reader of YAML sees it: ``list of int (>= 1)``, ``mapping of str to float``."""
    tp, metadata = _strip_annotated(tp)
    bounds = _constraint_text(metadata)
    suffix = f" ({', '.join(bounds)})" if bounds else ""
    origin = get_origin(tp)
    if tp is type(None):
        text = "null"
    elif tp is Any:
        text = "any"
    elif origin is Literal:
        kinds = sorted({type(v).__name__ for v in get_args(tp)})
        text = " or ".join(_SCALARS.get(k, k) for k in kinds)
    elif _is_union(tp):
        parts: list[str] = []
        for p in get_args(tp):  # Literal parts are merged into one word (their values go to "allowed")
            t = type_text(p)
            if t not in parts:
                parts.append(t)
        text = " or ".join(parts)
    elif origin in (list, tuple, set, frozenset):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        text = f"list of {type_text(args[0])}" if args else "list"
    elif origin is dict:
        key, value = get_args(tp)
        text = f"mapping of {type_text(key)} to {type_text(value)}"
    elif _is_model(tp):
        text = "mapping"
    elif inspect.isclass(tp):
        text = _SCALARS.get(tp.__name__, tp.__name__)
    else:
        text = str(tp).replace("typing.", "")
    return text + suffix


_SCALARS = {
    "str": "text",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "date": "date (YYYY-MM-DD)",
}


# -- values ----------------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A default as it would be written in YAML (flow style)."""
    if isinstance(value, BaseModel):
        return value_text(value.model_dump(mode="json", exclude_none=True))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return repr(value)


def _default_text(field: FieldInfo, model_type: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if _is_model(model_type) and isinstance(value, model_type) and value == _bare_instance(model_type):
        return "the defaults of its keys"
    return f"`{value_text(value)}`"


def _bare_instance(model: type[BaseModel]) -> BaseModel | None:
    """``model()`` with every key at its default, or None when it has required keys."""
    try:
        return model()
    except ValidationError:
        return None


def _allowed_text(annotation: Any, metadata: list[Any]) -> str:
    tp, more = _strip_annotated(annotation)
    words = _constraint_text([*metadata, *more])
    inner, _ = _without_none(tp)
    literals = [v for p in _union_parts(inner) for v in (_literal_values(p) or [])]
    if literals:
        words.insert(0, " \\| ".join(f"`{value_text(v)}`" for v in literals))
    origin = get_origin(inner)
    if origin in (list, tuple, set, frozenset) and get_args(inner):
        items = _literal_values(get_args(inner)[0])
        if items:
            words.insert(0, "items: " + " \\| ".join(f"`{value_text(v)}`" for v in items))
    if origin is dict:
        keys = _literal_values(get_args(inner)[0])
        if keys:
            words.insert(0, "keys: " + " \\| ".join(f"`{value_text(v)}`" for v in keys))
    return "; ".join(words)


# -- text ------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """One Markdown table cell: reST double backticks made single, whitespace and pipes tamed."""
    text = re.sub(r":\w+:`([^`]*)`", r"`\1`", text)
    text = text.replace("``", "`")
    text = " ".join(text.split())
    return text.replace("|", "\\|")


def _doc_summary(model: type[BaseModel]) -> str:
    """A model's own docstring (not an inherited one), first paragraph."""
    doc = model.__dict__.get("__doc__") or ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()) if doc else ""


def _placeholder(name: str) -> str:
    """``domains`` -> ``<domain>``: the name of one key of a mapping."""
    for plural, singular in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("xes", "x")):
        if name.endswith(plural):
            return f"<{name[: -len(plural)]}{singular}>"
    if name.endswith("s") and not name.endswith("ss"):
        return f"<{name[:-1]}>"
    return f"<{name}>"


# -- the walk --------------------------------------------------------------------------------------


def _discriminator(metadata: list[Any]) -> str | None:
    for m in metadata:
        d = getattr(m, "discriminator", None)
        if isinstance(d, str):
            return d
    return None


def _variant_label(model: type[BaseModel], discriminator: str | None) -> str:
    if discriminator is not None:
        values = _literal_values(model.model_fields[discriminator].annotation)
        if values:
            return f"{discriminator}={values[0]}"
    return model.__name__


def _container_rows(key: str, tp: Any, skip: str | None = None) -> list[KeyRow]:
    """Rows below ``key`` for a value of type ``tp``: a model's keys, a mapping's or a list's items."""
    tp, metadata = _strip_annotated(tp)
    tp, _ = _without_none(tp)
    if _is_model(tp):
        return model_rows(tp, prefix=key + ".", skip=skip)
    origin = get_origin(tp)
    if origin is dict:
        return _container_rows(f"{key}.{_placeholder(key.rsplit('.', 1)[-1])}", get_args(tp)[1])
    if origin in (list, tuple, set, frozenset) and get_args(tp):
        item, item_meta = _strip_annotated(get_args(tp)[0])
        item, _ = _without_none(item)
        variants = [p for p in _union_parts(item) if _is_model(p)]
        if len(variants) > 1:
            disc = _discriminator(item_meta)
            rows: list[KeyRow] = []
            for v in variants:
                vkey = f"{key}[{_variant_label(v, disc)}]"
                doc = _clean(_doc_summary(v)) or NO_DESCRIPTION
                rows.append(KeyRow(vkey, "mapping", "", "", doc, described=False, variant=True))
                rows += model_rows(v, prefix=vkey + ".", skip=disc)
            return rows
        if variants:
            return _container_rows(f"{key}[]", variants[0])
    return []


def model_rows(model: type[BaseModel], prefix: str = "", skip: str | None = None) -> list[KeyRow]:
    """Every key of ``model`` and of what it holds, in the order the schema declares them."""
    rows: list[KeyRow] = []
    for name, field in model.model_fields.items():
        if name == skip:  # a union variant's discriminator: its value is in the variant's key
            continue
        key = prefix + name
        tp = field.annotation
        inner, _ = _without_none(_strip_annotated(tp)[0])
        described = bool(field.description)
        description = field.description or ""
        if not described and _is_model(inner):
            description = _doc_summary(inner)
        rows.append(
            KeyRow(
                key=key,
                type=type_text(tp),
                default=_default_text(field, inner),
                allowed=_allowed_text(tp, list(field.metadata)),
                description=_clean(description) if description else NO_DESCRIPTION,
                described=described,
            )
        )
        rows += _container_rows(key, tp)
    return rows


def missing_descriptions(model: type[BaseModel]) -> list[str]:
    """The dotted keys whose field has no ``description=`` (a union variant's row is described by
    its model's docstring instead, and listed only when that is missing too)."""
    return [
        r.key
        for r in model_rows(model)
        if (r.variant and r.description == NO_DESCRIPTION) or (not r.variant and not r.described)
    ]


# -- the page --------------------------------------------------------------------------------------

HEADER = """# Study-file reference

Generated from the schema (`synergy_dagster/study_file.py`, `StudyFile`) by
`{command}`; do not edit by hand (a test fails when this page is stale).
How to write a study file: [the user guide](../user-guide.md#the-study-file).

A key is written dotted from the top of the file: `budget.max_updates` is `max_updates` inside
`budget:`. `<domain>` (and the like) stands for a key of a mapping; `[]` for an item of a list;
`[kind=kmeans]` for an item of that kind. *required* keys must be given; *unset* means the key may be
left out and then has no value (what applies instead is in its description). A default here is the
schema's own: the preset a study names (`profile`, `synergy_dagster/presets/<name>.yaml`) is merged
under the study file first and sets many keys to other values.
"""


def _table(rows: list[KeyRow]) -> list[str]:
    out = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r.key}` | {_clean(r.type)} | {r.default} | {r.allowed} | {r.description} |")
    return out


def render(model: type[BaseModel], title_model: str = "StudyFile") -> str:
    """The reference page of ``model``: top-level scalar keys first, then one section per nested key."""
    lines = [HEADER.format(command=COMMAND).rstrip(), ""]
    rows = model_rows(model)
    tops = [name for name in model.model_fields]
    simple = [r for r in rows if r.key in tops and not _has_children(r.key, rows)]
    if simple:
        lines += ["## Top-level keys", "", *_table(simple), ""]
    for name in tops:
        group = [r for r in rows if r.key == name or r.key.startswith((name + ".", name + "["))]
        if not _has_children(name, rows):
            continue
        lines += [f"## `{name}`", "", *_table(group), ""]
    return "\n".join(lines).rstrip() + "\n"


def _has_children(key: str, rows: list[KeyRow]) -> bool:
    return any(r.key.startswith((key + ".", key + "[")) for r in rows)


def study_file_reference() -> str:
    """The page for the project's ``StudyFile``."""
    from synergy_dagster.study_file import StudyFile

    return render(StudyFile)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=REFERENCE_PATH, help="where to write the page")
    ap.add_argument("--check", action="store_true", help="exit 1 if the page differs; write nothing")
    args = ap.parse_args(argv)
    text = study_file_reference()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
