"""Property-based fuzzing of every reader: a mutated input is either read exactly as before (where
the mutation changed nothing the reader uses), read with a change confined to the mutated cell (a
valid different value), or refused with :class:`InputError` — never another exception type and
never values changed anywhere else.

Each test builds a small valid input in a temporary folder (as test_readers_formats.py does), reads
it once, then lets hypothesis mutate it: byte level (flip, insert, delete a byte, truncate) and cell
level (a cell replaced by random text, a number, empty, huge, negative; two columns swapped; a row
duplicated; a date changed). A reader result is compared cell by cell, keyed by (variable, site,
date), with the original read; the mutation says which keys may change:

* a byte or cell in a data row: only that row's (site, date) cells, and the (site, new date) cells
  when its date was changed;
* truncation inside a data row: that row's and every later row's cells (a shorter record is valid);
* a header line that holds one site's values (CAMELS forcing lat/elevation/area): that site's cells;
* anything else (column names, comments, row count, column order): nothing.

Binary containers (NetCDF/HDF5, GeoPackage/SQLite, shapefile .dbf) have no checksum, so a byte flip
in their data cannot be told from a real value: there the byte-level property is "InputError or a
result", and the strict property runs on cell-level mutations written through the library.

Examples are bounded (``FUZZ_PROFILE``): 'ci' (``CI`` set: derandomized, fixed examples) or 'dev'.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from synergy_dagster.errors import InputError
from synergy_dagster.sources.basin_polygons import read_basin_polygons
from synergy_dagster.sources.camels_us import read_camels_us
from synergy_dagster.sources.caravan import read_caravan, write_caravan_csv
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.gages2 import read_gages2
from synergy_dagster.sources.nwis import read_nwis_rdb, write_nwis_rdb
from synergy_dagster.sources.pixels import read_pixel_cube
from synergy_dagster_tests.sources.test_readers_formats import _eco_gdf, _pixel_ds, _site_ds, _write_camels

pytestmark = pytest.mark.fuzz

# Bounded so the module runs in well under a minute on two cores; CI replays the same examples.
EXAMPLES = {
    "ci": 25,
    "dev": int(os.environ.get("SYNERGY_FUZZ_EXAMPLES", "25")),
}  # dev: raise it to dig deeper
for _name, _n in EXAMPLES.items():
    settings.register_profile(
        f"synergy-fuzz-{_name}",
        max_examples=_n,
        deadline=None,
        derandomize=_name == "ci",
        database=None if _name == "ci" else settings.default.database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
FUZZ_PROFILE = "ci" if os.environ.get("CI") else "dev"
# Used as a decorator, not loaded globally: other modules keep hypothesis' defaults.
FUZZ = settings.get_profile(f"synergy-fuzz-{FUZZ_PROFILE}")

Key = tuple[str, str, object]  # (variable, site, date or None)
Cells = dict[Key, object]


# ---------------------------------------------------------------- comparing reader results


def _norm(v: object) -> object:
    """A cell value comparable across reads: floats (NaN == NaN), strings, geometry as WKT."""
    if hasattr(v, "wkt"):
        return v.normalize().wkt  # type: ignore[attr-defined]
    if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool):
        f = float(v)
        return "nan" if math.isnan(f) else f
    return str(v)


def dataset_cells(ds: xr.Dataset) -> Cells:
    """Every value of a sitedata dataset keyed (variable, site, date); statics and coords date None."""
    sites = [str(s) for s in ds["site"].values]
    times = pd.DatetimeIndex(ds["time"].values)
    out: Cells = {}
    for name in [*ds.data_vars, "lat", "lon"]:
        var = ds[name]
        if var.dims == ("site", "time"):
            arr = var.values
            for i, s in enumerate(sites):
                for j, t in enumerate(times):
                    out[(str(name), s, t)] = _norm(arr[i, j])
        elif var.dims == ("site",):
            for i, s in enumerate(sites):
                out[(str(name), s, None)] = _norm(var.values[i])
    return out


def frame_cells(df: pd.DataFrame, site_col: str | None = None, date_col: str | None = None) -> Cells:
    """A table's values keyed (column, row id, date): row id from ``site_col`` or the index."""
    out: Cells = {}
    ids = df[site_col].astype(str) if site_col else pd.Series(df.index.astype(str), index=df.index)
    dates = pd.to_datetime(df[date_col]) if date_col else pd.Series([None] * len(df), index=df.index)
    for col in df.columns:
        if col in (site_col, date_col):
            continue
        for k, (rid, day, v) in enumerate(zip(ids, dates, df[col], strict=True)):
            key = (str(col), rid, day)
            out[key if key not in out else (str(col), f"{rid}#{k}", day)] = _norm(v)
    return out


def changed(a: Cells, b: Cells) -> set[Key]:
    """Keys whose value differs, including keys present in only one of the two."""
    return {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}


@dataclass(frozen=True)
class Allowed:
    """Which result cells a mutation may change: sites (any date), (site, date) pairs, or none."""

    sites: frozenset[str] = frozenset()
    rows: frozenset[tuple[str, object]] = frozenset()

    def __call__(self, key: Key) -> bool:
        return key[1] in self.sites or (key[1], key[2]) in self.rows


NOTHING = Allowed()


def check_property(
    read: Callable[[], object], cells: Callable[[object], Cells], original: Cells, allowed: Allowed
) -> None:
    """The fuzz property: InputError, or a result that differs from ``original`` only where allowed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = read()
    except InputError:
        return
    got = cells(result)
    bad = {k for k in changed(original, got) if not allowed(k)}
    bad -= _renamed(original, got, bad)
    assert not bad, f"values changed silently at {sorted(bad, key=str)[:5]}"


def _renamed(original: Cells, got: Cells, keys: set[Key]) -> set[Key]:
    """Keys explained by one column name changed in a header with every value kept: not a value
    change (the reader cannot know every attribute name; a renamed required column fails anyway)."""
    old = {k[0] for k in keys if k in original and k not in got}
    new = {k[0] for k in keys if k in got and k not in original}
    if len(old) != 1 or len(new) != 1:
        return set()
    (a,), (b,) = old, new
    same = all(got.get((b, *k[1:]), "<absent>") == v for k, v in original.items() if k[0] == a)
    return {k for k in keys if k[0] in (a, b)} if same else set()


# ---------------------------------------------------------------- text mutations


@dataclass(frozen=True)
class TextFile:
    """A text input and where its rows are: line index -> (site, date) of a data row, and the
    header lines that hold values of one site."""

    rows: dict[int, tuple[str, object]]
    site_lines: dict[int, str]
    date_of: Callable[[str], object]  # the date a (mutated) data line names, or None
    site: str  # the site whose values the file holds (one-site files)


def _line_at(data: bytes, pos: int) -> int:
    return data[:pos].count(b"\n")


def _content_lines(data: bytes) -> list[bytes]:
    return [ln for ln in data.split(b"\n") if ln.strip()]


def byte_allowed(orig: bytes, mutated: bytes, pos: int, kind: str, tf: TextFile) -> Allowed:
    """What a byte mutation at ``pos`` may change (see the module docstring)."""
    if mutated == orig:
        return NOTHING
    line = _line_at(orig, min(pos, len(orig) - 1))
    if kind == "truncate":
        if not tf.rows or line < min(tf.rows):
            return NOTHING
        later = frozenset(r for i, r in tf.rows.items() if i >= line)
        return Allowed(rows=later)
    if len(_content_lines(orig)) != len(_content_lines(mutated)):
        return NOTHING  # a row split or merged: must be refused (or read as before)
    if line in tf.site_lines:
        return Allowed(sites=frozenset([tf.site_lines[line]]))
    if line in tf.rows:
        site, day = tf.rows[line]
        new_lines = mutated.split(b"\n")
        new_day = tf.date_of(new_lines[line].decode("utf-8", "replace")) if line < len(new_lines) else None
        return Allowed(rows=frozenset({(site, day), (site, new_day)}))
    return NOTHING


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> tuple[bytes, int, str]:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    pos = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1 :], pos, kind
    if kind == "insert":
        byte = draw(st.one_of(st.sampled_from(list(b"\n\t ,-.0123456789eE#\x00\xff")), st.integers(0, 255)))
        return data[:pos] + bytes([byte]) + data[pos:], pos, kind
    if kind == "delete":
        return data[:pos] + data[pos + 1 :], pos, kind
    return data[:pos], pos, kind


CELL_VALUES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=8),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        ["", " ", "-1", "-0.5", "0", "1e30", "-9999", "-999", "9.96921e36", "NaN", "inf", "1,5", "n/a"]
    ),
    st.floats(0, 5).map(lambda v: f"{v:.3f}"),  # a plausible value: must change that cell only
)
DATES = st.dates(min_value=pd.Timestamp("1899-01-01").date(), max_value=pd.Timestamp("2100-12-31").date())


@st.composite
def cell_mutations(
    draw: st.DrawFn, text: str, tf: TextFile, sep: str, date_cells: Callable[[str], list[int]]
) -> tuple[str, Allowed]:
    """Replace a cell, swap two columns, duplicate a row or change a date; with what may change."""
    lines = text.split("\n")
    data_rows = sorted(tf.rows)
    kind = draw(st.sampled_from(["cell", "cell", "date", "swap", "duplicate"]))
    split = re.compile(r"\s+" if sep == " " else re.escape(sep))
    if kind == "duplicate":
        i = draw(st.sampled_from(data_rows))
        return "\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]]), NOTHING
    if kind == "swap":
        # Whole columns, names included: a reordering, which must not change a value.
        table = [i for i in range(len(lines)) if lines[i].strip() and i >= min(data_rows) - 1]
        cols = [split.split(lines[i].strip()) for i in table]
        width = min(len(c) for c in cols)
        if width < 2:
            return text, NOTHING
        a, b = draw(st.lists(st.integers(0, width - 1), min_size=2, max_size=2, unique=True))
        joiner = "," if sep == "," else ("\t" if sep == "\t" else " ")
        for i, c in zip(table, cols, strict=True):
            c[a], c[b] = c[b], c[a]
            lines[i] = joiner.join(c)
        return "\n".join(lines), NOTHING
    i = draw(st.sampled_from(data_rows))
    cells = split.split(lines[i])
    if kind == "date":
        k = draw(st.sampled_from(date_cells(lines[i])))
        day = draw(DATES)
        fmt = draw(st.sampled_from(["iso", "parts"])) if len(date_cells(lines[i])) == 1 else "parts"
        if fmt == "iso":
            cells[k] = f"{day:%Y-%m-%d}"
        else:  # year month day in separate cells (CAMELS)
            ks = date_cells(lines[i])
            for kk, v in zip(ks, (f"{day.year}", f"{day.month:02d}", f"{day.day:02d}"), strict=False):
                cells[kk] = v
    else:
        k = draw(st.integers(0, len(cells) - 1))
        cells[k] = draw(CELL_VALUES)
    joiner = "," if sep == "," else ("\t" if sep == "\t" else " ")
    lines[i] = joiner.join(cells)
    site, day = tf.rows[i]
    new_day = tf.date_of(lines[i])
    return "\n".join(lines), Allowed(rows=frozenset({(site, day), (site, new_day)}))


def _iso_date(cell: str) -> object:
    try:
        return pd.Timestamp(cell.strip())
    except (ValueError, TypeError, OverflowError):
        return None


def _ymd_date(tokens: list[str]) -> object:
    try:
        return pd.Timestamp(int(tokens[0]), int(tokens[1]), int(tokens[2]))
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


# ---------------------------------------------------------------- inputs: build once, copy per example


@dataclass
class Case:
    """A valid input tree, the file to mutate inside it and the reader's original result."""

    root: Path
    target: Path  # relative to root
    read: Callable[[Path], object]  # root -> result
    cells: Callable[[object], Cells]
    original: Cells


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="synergy-fuzz-") as d:
        yield Path(d)


def _mutated_copy(case: Case, new: bytes) -> tuple[tempfile.TemporaryDirectory[str], Path]:
    tmp = tempfile.TemporaryDirectory(prefix="m-", dir=case.root.parent)
    root = Path(tmp.name) / "in"
    shutil.copytree(case.root, root)
    (root / case.target).write_bytes(new)
    return tmp, root


def _check_bytes(case: Case, new: bytes, allowed: Allowed) -> None:
    tmp, root = _mutated_copy(case, new)
    with tmp:
        check_property(lambda: case.read(root), case.cells, case.original, allowed)


# -- Caravan CSV (one file per gauge, plus an attribute table)

CARAVAN_GAUGE = "camels_02000000"


def _caravan_case(workdir: Path, target: str) -> tuple[Case, TextFile]:
    files = {
        "ts": Path("timeseries/csv/camels") / f"{CARAVAN_GAUGE}.csv",
        "attrs": Path("attributes/camels/attributes_other_camels.csv"),  # lat, lon, area
    }
    case = Case(workdir / "caravan" / "in", files[target], read_caravan, dataset_cells, {})
    case.original = dataset_cells(read_caravan(case.root))
    lines = (case.root / case.target).read_text().split("\n")
    if target == "ts":
        rows = {
            i: (CARAVAN_GAUGE, _iso_date(ln.split(",")[0])) for i, ln in enumerate(lines) if i and ln.strip()
        }
        tf = TextFile(rows, {}, lambda ln: _iso_date(ln.split(",")[0]), CARAVAN_GAUGE)
    else:  # an attribute row holds one gauge's statics
        site_lines = {i: ln.split(",")[0] for i, ln in enumerate(lines) if i and ln.strip()}
        tf = TextFile({}, site_lines, lambda ln: None, "")
    return case, tf


@pytest.fixture(scope="module")
def caravan(workdir: Path) -> Path:
    root = workdir / "caravan" / "in"
    root.mkdir(parents=True)
    write_caravan_csv(_site_ds(), root, "camels")
    return workdir


@FUZZ
@given(data=st.data())
def test_caravan_csv_bytes(caravan: Path, data: st.DataObject) -> None:
    case, tf = _caravan_case(caravan, "ts")
    orig = (case.root / case.target).read_bytes()
    new, pos, kind = data.draw(byte_mutations(orig))
    _check_bytes(case, new, byte_allowed(orig, new, pos, kind, tf))


@FUZZ
@given(data=st.data())
def test_caravan_csv_cells(caravan: Path, data: st.DataObject) -> None:
    case, tf = _caravan_case(caravan, "ts")
    text = (case.root / case.target).read_text()
    new, allowed = data.draw(cell_mutations(text, tf, ",", lambda ln: [0]))
    _check_bytes(case, new.encode(), allowed)


@FUZZ
@given(data=st.data())
def test_caravan_attribute_table(caravan: Path, data: st.DataObject) -> None:
    case, tf = _caravan_case(caravan, "attrs")
    orig = (case.root / case.target).read_bytes()
    new, pos, kind = data.draw(byte_mutations(orig))
    allowed = byte_allowed(orig, new, pos, kind, tf) if kind != "truncate" else NOTHING
    if kind == "truncate":  # a shorter attribute table drops gauges: must be refused or harmless
        allowed = Allowed(sites=frozenset(tf.site_lines.values()))
    _check_bytes(case, new, allowed)


# -- CAMELS-US text: forcing and streamflow files

CAMELS_GAUGE = "01013500"


@pytest.fixture(scope="module")
def camels(workdir: Path) -> Path:
    root = workdir / "camels" / "in"
    root.mkdir(parents=True)
    _write_camels(root, huc_dirs=False)
    return workdir


def _camels_case(workdir: Path, target: str) -> tuple[Case, TextFile]:
    root = workdir / "camels" / "in"
    rel = (
        Path("usgs_streamflow") / f"{CAMELS_GAUGE}_streamflow_qc.txt"
        if target == "q"
        else Path("basin_mean_forcing/daymet") / f"{CAMELS_GAUGE}_lump_cida_forcing_leap.txt"
    )

    def read(r: Path) -> xr.Dataset:
        return read_camels_us(r, forcing="daymet")

    case = Case(root, rel, read, dataset_cells, {})
    case.original = dataset_cells(read(root))
    lines = (root / rel).read_text().split("\n")
    if target == "q":

        def day(ln: str) -> object:
            return _ymd_date(ln.split()[1:4])

        rows = {i: (CAMELS_GAUGE, day(ln)) for i, ln in enumerate(lines) if ln.strip()}
        return case, TextFile(rows, {}, day, CAMELS_GAUGE)

    def fday(ln: str) -> object:
        return _ymd_date(ln.split()[0:3])

    rows = {i: (CAMELS_GAUGE, fday(ln)) for i, ln in enumerate(lines) if i >= 4 and ln.strip()}
    # Lines 0-2: latitude, elevation, area of this gauge (area only a fallback here).
    return case, TextFile(rows, {0: CAMELS_GAUGE, 1: CAMELS_GAUGE, 2: CAMELS_GAUGE}, fday, CAMELS_GAUGE)


@FUZZ
@given(data=st.data(), target=st.sampled_from(["q", "forcing"]))
def test_camels_us_bytes(camels: Path, data: st.DataObject, target: str) -> None:
    case, tf = _camels_case(camels, target)
    orig = (case.root / case.target).read_bytes()
    new, pos, kind = data.draw(byte_mutations(orig))
    _check_bytes(case, new, byte_allowed(orig, new, pos, kind, tf))


@FUZZ
@given(data=st.data(), target=st.sampled_from(["q", "forcing"]))
def test_camels_us_cells(camels: Path, data: st.DataObject, target: str) -> None:
    case, tf = _camels_case(camels, target)
    text = (case.root / case.target).read_text()
    first = 1 if target == "q" else 0
    new, allowed = data.draw(cell_mutations(text, tf, " ", lambda ln: [first, first + 1, first + 2]))
    _check_bytes(case, new.encode(), allowed)


# -- NWIS RDB (two sites in one file, gaps allowed)


@pytest.fixture(scope="module")
def nwis(workdir: Path) -> Path:
    root = workdir / "nwis" / "in"
    root.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "site_no": ["01022500"] * 6 + ["01031500"] * 6,
            "date": list(pd.date_range("2009-09-01", periods=6)) * 2,
            "value": [100.0, np.nan, 102.5, 103.0, 104.0, 105.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0],
            "qualifier": ["A", "A", "P", "A:e", "A", "P"] * 2,
        }
    )
    write_nwis_rdb(frame, root / "dv.rdb")
    return workdir


def _nwis_case(workdir: Path) -> tuple[Case, TextFile]:
    root = workdir / "nwis" / "in"

    def read(r: Path) -> pd.DataFrame:
        return read_nwis_rdb(r / "dv.rdb")

    def cells(df: object) -> Cells:
        return frame_cells(df, "site_no", "date")  # type: ignore[arg-type]

    case = Case(root, Path("dv.rdb"), read, cells, cells(read(root)))
    lines = (root / "dv.rdb").read_text().split("\n")
    rows = {
        i: (ln.split("\t")[1], _iso_date(ln.split("\t")[2]))
        for i, ln in enumerate(lines)
        if ln.startswith("USGS\t")
    }

    def day(ln: str) -> object:
        parts = ln.split("\t")
        return _iso_date(parts[2]) if len(parts) > 2 else None

    return case, TextFile(rows, {}, day, "")


@FUZZ
@given(data=st.data())
def test_nwis_rdb_bytes(nwis: Path, data: st.DataObject) -> None:
    case, tf = _nwis_case(nwis)
    orig = (case.root / case.target).read_bytes()
    new, pos, kind = data.draw(byte_mutations(orig))
    _check_bytes(case, new, byte_allowed(orig, new, pos, kind, tf))


@FUZZ
@given(data=st.data())
def test_nwis_rdb_cells(nwis: Path, data: st.DataObject) -> None:
    case, tf = _nwis_case(nwis)
    text = (case.root / case.target).read_text()
    new, allowed = data.draw(cell_mutations(text, tf, "\t", lambda ln: [2]))
    _check_bytes(case, new.encode(), allowed)


# -- pixel cube (NetCDF)


@pytest.fixture(scope="module")
def cube(workdir: Path) -> Path:
    root = workdir / "cube" / "in"
    root.mkdir(parents=True)
    _pixel_ds().to_netcdf(root / "cube.nc")
    return workdir


def _cube_case(workdir: Path) -> Case:
    root = workdir / "cube" / "in"

    def read(r: Path) -> xr.Dataset:
        return read_pixel_cube(r / "cube.nc")

    return Case(root, Path("cube.nc"), read, dataset_cells, dataset_cells(read(root)))


@FUZZ
@given(data=st.data())
def test_pixel_cube_bytes_raise_only_input_errors(cube: Path, data: st.DataObject) -> None:
    case = _cube_case(cube)
    orig = (case.root / case.target).read_bytes()
    new, _, _ = data.draw(byte_mutations(orig))
    tmp, root = _mutated_copy(case, new)
    with tmp, contextlib.suppress(InputError):
        case.read(root)


NUMBERS = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([-1.0, -0.01, 0.0, 0.2, 1.5, 300.0, -9999.0, 1e20, 9.96921e36]),
)


@FUZZ
@given(
    kind=st.sampled_from(["cell", "cell", "date", "duplicate", "reorder"]),
    var=st.sampled_from(["SMAP_AM", "APCP_FORA", "TMP_2_FORA", "Clay"]),
    px=st.integers(0, 3),
    t=st.integers(0, 9),
    value=NUMBERS,
    day=DATES,
)
def test_pixel_cube_cells(
    cube: Path, kind: str, var: str, px: int, t: int, value: float, day: object
) -> None:
    case = _cube_case(cube)
    src = xr.load_dataset(case.root / "cube.nc")
    times = pd.DatetimeIndex(src["time"].values)
    site = f"px{px}"
    if kind == "cell":
        arr = src[var].values.copy()
        if arr.ndim == 2:
            arr[px, t] = value
            allowed = Allowed(rows=frozenset({(site, times[t])}))
        else:
            arr[px] = value
            allowed = Allowed(rows=frozenset({(site, None)}))
        src[var] = (src[var].dims, arr, src[var].attrs)
    elif kind == "date":
        new_times = times.to_numpy().copy()
        new_times[t] = np.datetime64(pd.Timestamp(day))  # type: ignore[arg-type]
        src = src.assign_coords(time=new_times)
        allowed = Allowed(
            rows=frozenset((f"px{i}", d) for i in range(4) for d in (times[t], pd.Timestamp(day)))
        )  # type: ignore[arg-type]
    elif kind == "duplicate":
        src = xr.concat(
            [src.isel(time=slice(0, t + 1)), src.isel(time=slice(t, None))], dim="time", data_vars="minimal"
        )
        allowed = NOTHING
    else:  # variables in another order: nothing may change
        src = src[list(reversed(list(src.data_vars)))]
        allowed = NOTHING
    tmp = tempfile.TemporaryDirectory(prefix="m-", dir=case.root.parent)
    with tmp:
        path = Path(tmp.name) / "cube.nc"
        src.to_netcdf(path)
        check_property(lambda: read_pixel_cube(path), dataset_cells, case.original, allowed)


# -- vector layers: ecoregions (GeoPackage), basin polygons (GeoPackage), GAGES-II (shapefile)


def _gdf_cells(key_col: str) -> Callable[[object], Cells]:
    def cells(g: object) -> Cells:
        df = g.reset_index() if key_col not in g.columns else g  # type: ignore[union-attr]
        out: Cells = {}
        for col in df.columns:
            if col == key_col:
                continue
            for k, v in zip(df[key_col].astype(str), df[col], strict=True):
                out[(str(col), k, None)] = _norm(v)
        return out

    return cells


GEO_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
    st.sampled_from(["", "0", "-1", "1e30", "8.1", "8.1.1", "9", "10.1.1", "Ref", " ", "x,y"]),
)


def _vector_test(
    tmp_dir: Path,
    gdf: gpd.GeoDataFrame,
    ext: str,
    read: Callable[[Path], object],
    key_col: str,
    row: int,
    col: str,
    value: object,
    extra_keys: Callable[[gpd.GeoDataFrame, int], set[str]],
) -> None:
    """Write ``gdf`` and a copy with one cell replaced; the read may change only that row's keys."""
    good = tmp_dir / f"good.{ext}"
    if not good.exists():
        gdf.to_file(good)
    cells = _gdf_cells(key_col)
    original = cells(read(good))
    bad = gdf.copy()
    if col == "geometry":
        bad.loc[row, "geometry"] = value
    else:
        bad[col] = bad[col].astype(object)
        bad.loc[row, col] = value
    with tempfile.TemporaryDirectory(prefix="m-", dir=tmp_dir) as d:
        path = Path(d) / f"bad.{ext}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bad.to_file(path)
        except Exception:  # noqa: BLE001 - the writer (not the reader) refused the value: nothing to read
            return
        check_property(lambda: read(path), cells, original, Allowed(sites=frozenset(extra_keys(gdf, row))))


GEOMETRIES = st.sampled_from(
    [box(-91, 40, -89, 41), box(0, 0, 1, 1), Point(-90, 40), None, box(-90, 40, -90, 40)]
)


@FUZZ
@given(
    row=st.integers(0, 4),
    col=st.sampled_from(["US_L3CODE", "NA_L3CODE", "NA_L2CODE", "NA_L1CODE", "NA_L3NAME", "geometry"]),
    text=GEO_TEXT,
    geom=GEOMETRIES,
)
def test_ecoregion_geopackage_cells(workdir: Path, row: int, col: str, text: str, geom: object) -> None:
    folder = workdir / "eco"
    folder.mkdir(exist_ok=True)
    gdf = _eco_gdf()

    def touched(g: gpd.GeoDataFrame, i: int) -> set[str]:
        # The row's region before, and whatever code the mutated row could form now.
        return {str(g.loc[i, "NA_L3CODE"]), str(text).strip()} | {k for k in _all_codes(text)}

    _vector_test(
        folder, gdf, "gpkg", read_ecoregions, "l3", row, col, geom if col == "geometry" else text, touched
    )


def _all_codes(text: str) -> set[str]:
    return {text, text.strip()}


@FUZZ
@given(data=st.data())
def test_geopackage_bytes_raise_only_input_errors(workdir: Path, data: st.DataObject) -> None:
    folder = workdir / "eco-bytes"
    folder.mkdir(exist_ok=True)
    good = folder / "good.gpkg"
    if not good.exists():
        _eco_gdf().to_file(good)
    orig = good.read_bytes()
    new, _, _ = data.draw(byte_mutations(orig))
    with tempfile.TemporaryDirectory(prefix="m-", dir=folder) as d:
        path = Path(d) / "bad.gpkg"
        path.write_bytes(new)
        for read in (read_ecoregions, read_basin_polygons):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read(path)
            except InputError:
                pass


def _basins() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"gauge_id": ["01013500", "02046000", "03010000"], "name": ["a", "b", "c"]},
        geometry=[box(-69, 47, -68, 48), box(-78, 37, -77, 38), box(-80, 40, -79, 41)],
        crs="EPSG:4326",
    )


@FUZZ
@given(
    row=st.integers(0, 2),
    col=st.sampled_from(["gauge_id", "name", "geometry"]),
    text=GEO_TEXT,
    geom=GEOMETRIES,
)
def test_basin_polygon_cells(workdir: Path, row: int, col: str, text: str, geom: object) -> None:
    folder = workdir / "basins"
    folder.mkdir(exist_ok=True)

    def touched(g: gpd.GeoDataFrame, i: int) -> set[str]:
        return {str(g.loc[i, "gauge_id"]), str(text), str(text).strip()}

    _vector_test(
        folder,
        _basins(),
        "gpkg",
        read_basin_polygons,
        "gauge_id",
        row,
        col,
        geom if col == "geometry" else text,
        touched,
    )


def _gages() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "STAID": ["01013500", "02046000", "12010000"],
            "CLASS": ["Ref", "Non-ref", "Ref"],
            "DRAIN_SQKM": [2252.7, 779.0, 340.0],
            "HUC02": ["01", "03", "17"],
            "AGGECOREGI": ["NorthEast", "SECstPlain", "WestMnts"],
            "STATE": ["ME", "VA", "WA"],
        },
        geometry=[Point(-68.58, 47.24), Point(-77.5, 37.0), Point(-123.7, 46.4)],
        crs="EPSG:4326",
    )


@FUZZ
@given(
    row=st.integers(0, 2),
    col=st.sampled_from(["STAID", "CLASS", "DRAIN_SQKM", "HUC02", "geometry"]),
    text=GEO_TEXT,
    geom=st.sampled_from([Point(-90, 40), Point(500, 500), None, box(0, 0, 1, 1)]),
)
def test_gages2_shapefile_cells(workdir: Path, row: int, col: str, text: str, geom: object) -> None:
    folder = workdir / "gages"
    folder.mkdir(exist_ok=True)

    def touched(g: gpd.GeoDataFrame, i: int) -> set[str]:
        cut = str(text).split("\x00")[0]  # the .dbf writer ends a text cell at a NUL
        return {
            str(g.loc[i, "STAID"]),
            *(v for t in (str(text), cut) for v in (t, t.strip(), t.strip().zfill(8))),
        }

    _vector_test(
        folder, _gages(), "shp", read_gages2, "STAID", row, col, geom if col == "geometry" else text, touched
    )


@FUZZ
@given(data=st.data())
def test_gages2_dbf_bytes_raise_only_input_errors(workdir: Path, data: st.DataObject) -> None:
    folder = workdir / "gages-bytes"
    folder.mkdir(exist_ok=True)
    good = folder / "good.shp"
    if not good.exists():
        _gages().to_file(good)
    which = data.draw(st.sampled_from([".dbf", ".shp", ".prj"]))
    orig = good.with_suffix(which).read_bytes()
    new, _, _ = data.draw(byte_mutations(orig))
    with tempfile.TemporaryDirectory(prefix="m-", dir=folder) as d:
        for part in folder.glob("good.*"):
            shutil.copyfile(part, Path(d) / part.name)
        (Path(d) / f"good{which}").write_bytes(new)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read_gages2(Path(d) / "good.shp")
        except InputError:
            pass


def test_the_property_catches_a_silent_change() -> None:
    """The checker itself: a value changed outside the allowed cells fails, a rename does not."""
    original: Cells = {("q", "a", 1): 1.0, ("q", "a", 2): 2.0, ("q", "b", 1): 3.0}
    moved = {**original, ("q", "b", 1): 4.0}
    with pytest.raises(AssertionError, match="changed silently"):
        check_property(lambda: moved, dict, original, Allowed(rows=frozenset({("a", 1)})))
    check_property(lambda: moved, dict, original, Allowed(rows=frozenset({("b", 1)})))
    renamed = {("r", *k[1:]): v for k, v in original.items()}
    check_property(lambda: renamed, dict, original, NOTHING)

    def refuse() -> None:
        raise InputError("f", "bad")

    check_property(refuse, dict, original, NOTHING)
