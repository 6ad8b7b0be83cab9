"""Other ways to regionalise: scheme definitions and the site -> region assignment per scheme.

The paper draws regions one way (EPA ecoregions grouped into sub-regions A-R). A study may run
global vs local under further schemes (study file ``stratification.schemes``) and compare them:

- ``ecoregions``: the sub-region letter of :mod:`.subregions` (today's behaviour);
- ``huc2``: hydrologic unit, from a HUC polygon file (any domain; point in polygon), else per
  gauge from GAGES-II ``HUC02`` (by USGS station number) or CAMELS ``huc_02``; for pixels without
  a polygon file the scheme is *not applicable* (reported, not an error);
- ``climate``: the cross product of per-attribute classes (config edges, or quantile classes) of
  named statics or of climate indices computed from the training-period forcing;
- ``kmeans``: k-means clusters of statics (seeded, several restarts): skewed attributes on a log
  scale, class codes left out, target-derived or whole-record attributes left out unless named;
- ``random``: an equal-size random partition (seeded) into as many regions as the ecoregion
  scheme has sub-regions with at least N sites (not size-matched to any scheme);
- size-matched nulls (:func:`size_matched_null`): per scheme, draws that permute its labels over
  its sites, keeping its region sizes: the null a scheme is tested against.

Region codes are short key-safe strings (``07``, ``3``, ``0-2``); a training set of a scheme is
keyed ``local@<scheme name>:<code>`` by the plan. All functions are vectorised and Dagster-free;
the ``<domain>_sites`` asset calls :func:`assign_schemes` on the kept sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from scipy.cluster.vq import kmeans2

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.regions.subregions import LETTERS
from synergy_dagster.sources.selection import LEAKY
from synergy_dagster.sources.sitedata import static_names
from synergy_dagster.study_file import (
    ClimateScheme,
    EcoregionScheme,
    Huc2Scheme,
    KmeansScheme,
    RandomScheme,
)

REGION_COLUMNS = ("scheme", "kind", "site_id", "region")
STATUS_COLUMNS = (
    "scheme",
    "kind",
    "applicable",
    "n_sites",
    "n_assigned",
    "n_regions",
    "n_regions_min",
    "detail",
)
CLIMATE_INDICES = ("aridity", "p_seasonality", "snow_fraction")
KMEANS_RESTARTS = 10

AnyScheme = EcoregionScheme | Huc2Scheme | ClimateScheme | KmeansScheme | RandomScheme


class NotApplicable(Exception):
    """The scheme cannot be drawn for this domain's data (e.g. HUC for pixels without polygons)."""


@dataclass
class SchemeInputs:
    """What the schemes may use, for the kept sites of one domain.

    ``sites``: site_id, lat, lon, subregion. ``ds``: the sites' dataset (statics and forcing).
    ``gages2``: :func:`synergy_dagster.sources.gages2.read_gages2` output (indexed by STAID);
    ``camels_huc``: gauge id -> CAMELS ``huc_02``; ``allow_leaky``: the attributes of
    :data:`~synergy_dagster.sources.selection.LEAKY` the study allows (``domains.<d>.allow_leaky``),
    the only leaky ones a scheme may use, as for the model inputs."""

    domain: str
    sites: pd.DataFrame
    min_sites: int
    ds: xr.Dataset | None = None
    train: slice | None = None
    gages2: pd.DataFrame | None = None
    camels_huc: pd.Series | None = None
    allow_leaky: frozenset[str] = frozenset()
    _ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        missing = [c for c in ("site_id", "lat", "lon", "subregion") if c not in self.sites.columns]
        if missing:
            raise InputError("scheme sites", f"missing columns {missing}; have {list(self.sites.columns)}")
        self._ids = self.sites["site_id"].astype(str).to_numpy()

    @property
    def ids(self) -> np.ndarray:
        return self._ids


def _codes(labels: np.ndarray, n: int) -> np.ndarray:
    """Integer labels 0..n-1 -> '1'..'n', zero-padded so codes sort as numbers; -1 -> None."""
    width = len(str(n))
    out = np.array([str(i + 1).zfill(width) for i in range(n)] + [None], dtype=object)
    return out[np.where(labels < 0, n, labels)]


def gauge_numbers(site_ids: Sequence[str] | np.ndarray) -> pd.Series:
    """The USGS station number inside a site id (``camels_01022500`` -> ``01022500``; the virtual
    ``virtual_00017`` -> ``00000017``): its trailing digits, zero-padded to 8."""
    ids = pd.Series(np.asarray(site_ids, dtype=str))
    return ids.str.extract(r"(\d+)$", expand=False).str.zfill(8)


def ecoregion_regions(inputs: SchemeInputs) -> np.ndarray:
    sub = inputs.sites["subregion"].to_numpy(dtype=object)
    return np.where(pd.isna(sub), None, sub).astype(object)


def read_huc_polygons(path: str, code_column: str) -> gpd.GeoDataFrame:
    """HUC polygons with their code column, in EPSG:4326."""
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises driver-specific types; all mean "unreadable"
        raise InputError(path, f"cannot read HUC polygons: {exc}") from exc
    if code_column not in gdf.columns:
        raise InputError(
            path, f"no column {code_column!r} (stratification code_column); have {list(gdf.columns)}"
        )
    if gdf.crs is None:
        raise InputError(path, "no coordinate reference system")
    return gdf[[code_column, "geometry"]].to_crs(4326)


def _points_in(polys: gpd.GeoDataFrame, code_column: str, inputs: SchemeInputs) -> np.ndarray:
    pts = gpd.GeoDataFrame(
        {"_pt": np.arange(len(inputs.ids))},
        geometry=gpd.points_from_xy(inputs.sites["lon"], inputs.sites["lat"]),
        crs="EPSG:4326",
    )
    hit = gpd.sjoin(pts, polys, how="inner", predicate="intersects")
    # a point on a shared border: the lowest code wins, so the choice never depends on file order
    hit = hit.sort_values(["_pt", code_column], kind="mergesort").drop_duplicates("_pt")
    out = np.full(len(inputs.ids), None, dtype=object)
    out[hit["_pt"].to_numpy()] = hit[code_column].astype(str).str.strip().to_numpy()
    return out


def huc2_regions(
    spec: Huc2Scheme, inputs: SchemeInputs, polygons: gpd.GeoDataFrame | None = None
) -> np.ndarray:
    """HUC codes (first ``spec.digits`` digits) per site; :class:`NotApplicable` when no source."""
    if polygons is not None:
        codes = pd.Series(_points_in(polygons, spec.code_column, inputs), dtype=object)
    elif inputs.domain != "streamflow":
        raise NotApplicable("no HUC for pixels: give the scheme a HUC polygon file ('polygons')")
    elif inputs.gages2 is not None:
        codes = gauge_numbers(inputs.ids).map(inputs.gages2["huc02"].astype(str))
    elif inputs.camels_huc is not None:
        codes = pd.Series(inputs.ids).map(inputs.camels_huc.astype(str))
    else:
        raise NotApplicable("no HUC source: set the streamflow domain's 'gages2', or give 'polygons'")
    digits = codes.where(codes.notna()).str.replace(r"\D", "", regex=True)
    digits = digits.where(digits.str.len() > 0).str.zfill(spec.digits).str[: spec.digits]
    arr = digits.to_numpy(dtype=object)
    return np.where(pd.notna(arr), arr, None).astype(object)


def climate_indices(
    ds: xr.Dataset, period: slice, precipitation: str, temperature: str | None, pet: str | None
) -> pd.DataFrame:
    """Per site over ``period``: ``aridity`` (mean PET / mean P), ``p_seasonality`` (coefficient of
    variation of the 12 monthly mean precipitations) and ``snow_fraction`` (share of precipitation
    on days below 0 degC); an index whose forcing is not named is left out."""
    for name in (precipitation, temperature, pet):
        if name is not None and name not in ds:
            raise ConfigError("stratification climate forcing", f"{name!r} is not a variable of the data")
    sub = ds.sel(time=period)
    p = sub[precipitation].transpose("site", "time").values.astype(np.float64)
    out = pd.DataFrame(index=pd.Index(ds["site"].values.astype(str), name="site_id"))
    p_mean = np.nanmean(p, axis=1)
    if pet is not None:
        e = sub[pet].transpose("site", "time").values.astype(np.float64)
        out["aridity"] = np.nanmean(np.abs(e), axis=1) / np.where(p_mean > 0, p_mean, np.nan)
    month = pd.DatetimeIndex(sub["time"].values).month.to_numpy()
    monthly = np.stack(
        [np.nanmean(p[:, month == m], axis=1) for m in range(1, 13) if (month == m).any()], axis=1
    )
    out["p_seasonality"] = np.nanstd(monthly, axis=1) / np.where(
        p_mean > 0, np.nanmean(monthly, axis=1), np.nan
    )
    if temperature is not None:
        t = sub[temperature].transpose("site", "time").values.astype(np.float64)
        if np.nanmedian(t) > 150:  # Kelvin
            t = t - 273.15
        cold = np.where(np.isfinite(p) & (t < 0), p, 0.0)
        out["snow_fraction"] = np.nansum(cold, axis=1) / np.where(
            np.nansum(p, axis=1) > 0, np.nansum(p, axis=1), np.nan
        )
    return out


def _statics(
    inputs: SchemeInputs, names: Sequence[str], extra: pd.DataFrame | None, what: str
) -> pd.DataFrame:
    """The named attributes of the sites (statics of the dataset, or ``extra`` columns)."""
    have = (
        {}
        if inputs.ds is None
        else {n: inputs.ds[n].values.astype(np.float64) for n in static_names(inputs.ds)}
    )
    site_order = np.arange(len(inputs.ids))
    if inputs.ds is not None:
        site_order = pd.Index(inputs.ds["site"].values.astype(str)).get_indexer(inputs.ids)
        if (site_order < 0).any():
            lost = inputs.ids[site_order < 0][:5].tolist()
            raise InputError("scheme sites", f"sites {lost} are not in the dataset of {inputs.domain}")
    cols = {}
    for n in names:
        if n in LEAKY and n not in inputs.allow_leaky and (extra is None or n not in extra.columns):
            raise ConfigError(
                what,
                f"{n!r} is derived from the target or computed over a record that may hold the test "
                f"period: list it under domains.{inputs.domain}.allow_leaky to use it anyway, or use the "
                f"indices a climate scheme computes on the training period ({list(CLIMATE_INDICES)}, "
                "with forcing:)",
                n,
            )
        if extra is not None and n in extra.columns:
            cols[n] = extra[n].reindex(inputs.ids).to_numpy(dtype=np.float64)
        elif n in have:
            cols[n] = have[n][site_order]
        else:
            avail = sorted(have) + ([] if extra is None else list(extra.columns))
            raise ConfigError(
                what, f"{n!r} is not a static attribute of the {inputs.domain} data; it has {avail}"
            )
    return pd.DataFrame(cols, index=inputs.ids)


def climate_regions(spec: ClimateScheme, inputs: SchemeInputs) -> tuple[np.ndarray, str]:
    """Codes ``i-j-k`` (class index per attribute, in config order) and a description of the edges."""
    dom = spec.domains.get(inputs.domain)  # type: ignore[call-overload]
    if dom is None:
        raise NotApplicable(f"no climate classes configured for {inputs.domain}")
    extra = None
    if dom.forcing:
        if "precipitation" not in dom.forcing or inputs.ds is None or inputs.train is None:
            raise ConfigError("stratification climate forcing", "name at least 'precipitation'")
        extra = climate_indices(
            inputs.ds,
            inputs.train,
            dom.forcing["precipitation"],
            dom.forcing.get("temperature"),
            dom.forcing.get("pet"),
        )
    table = _statics(inputs, list(dom.classes), extra, f"stratification.{spec.label}.domains.{inputs.domain}")
    parts, desc, valid = [], [], np.ones(len(table), dtype=bool)
    for name, rule in dom.classes.items():
        v = table[name].to_numpy()
        ok = np.isfinite(v)
        if isinstance(rule, int):
            # quantile classes of the kept sites (terciles for 3)
            edges = np.nanquantile(v[ok], np.linspace(0, 1, rule + 1)[1:-1]) if ok.any() else np.array([])
        else:
            edges = np.asarray(rule, dtype=np.float64)
        parts.append(np.digitize(v, edges).astype(str))
        valid &= ok
        desc.append(f"{name}: edges {np.round(edges, 4).tolist()}")
    code = parts[0].astype(object)
    for p in parts[1:]:
        code = code + "-" + p
    return np.where(valid, code, None).astype(object), "; ".join(desc)


# An attribute with only integer values and 3 to this many distinct ones is a class code (two
# values are an indicator, as a one-hot column, and stay).
CLASS_CODE_MAX_LEVELS = 12
# Positive attributes more skewed than this are clustered on their logarithm.
SKEW_LOG = 1.0


def cluster_features(x: pd.DataFrame) -> tuple[np.ndarray, list[str], str]:
    """The k-means feature matrix of the attributes ``x`` [site, attribute], the attributes used and
    a description of what was done to them.

    Class codes (integer values, 3 to :data:`CLASS_CODE_MAX_LEVELS` levels) are left out: their
    numeric distance means nothing; two-valued indicators stay, as one-hot columns would. Non-negative attributes with a sample skewness above
    :data:`SKEW_LOG` (area, storage) are log-transformed (``log1p`` where zeros occur), as the
    models' inputs are, so a few huge basins do not set the clusters. Then z-scores; constant
    attributes are dropped and a missing value sits at the mean."""
    used, cols, logged, codes = [], [], [], []
    for name in x.columns:
        v = x[name].to_numpy(dtype=np.float64)
        fin = v[np.isfinite(v)]
        if fin.size == 0 or np.nanstd(fin) == 0:
            continue
        if np.all(fin == np.round(fin)) and 2 < np.unique(fin).size <= CLASS_CODE_MAX_LEVELS:
            codes.append(str(name))
            continue
        if fin.min() >= 0 and float(pd.Series(fin).skew()) > SKEW_LOG:
            v = np.log1p(v) if fin.min() == 0 else np.log(v)
            logged.append(str(name))
        used.append(str(name))
        cols.append(v)
    z = _zscore(np.column_stack(cols)) if cols else np.empty((len(x), 0))
    what = f"z-scored {used}"
    if logged:
        what += f", log of {logged}"
    if codes:
        what += f", class codes left out {codes}"
    return z, used, what


def _zscore(x: np.ndarray) -> np.ndarray:
    mu, sd = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    z = (x - mu) / np.where(sd > 0, sd, 1.0)
    return np.where(np.isfinite(z), z, 0.0)  # a missing attribute sits at the mean


def kmeans_regions(spec: KmeansScheme, inputs: SchemeInputs) -> tuple[np.ndarray, str]:
    """Cluster codes ``1..k`` (ordered by size, largest first) of the statics prepared by
    :func:`cluster_features`. By default every static input except one-hot indicators
    (``class=code``) and the attributes of :data:`~synergy_dagster.sources.selection.LEAKY`
    (target-derived, or computed over a record that may hold the test period) the study does not
    allow; a study that names attributes gets exactly those (a leaky one only if allowed)."""
    names = spec.attributes.get(inputs.domain)  # type: ignore[call-overload]
    left_out: list[str] = []
    if names is None:
        default = [] if inputs.ds is None else [n for n in static_names(inputs.ds) if "=" not in n]
        left_out = [n for n in default if n in LEAKY and n not in inputs.allow_leaky]
        names = [n for n in default if n not in left_out]
    if not names:
        raise NotApplicable(f"no static attributes to cluster for {inputs.domain}")
    x = _statics(inputs, names, None, f"stratification.{spec.label}.attributes.{inputs.domain}")
    z, used, what = cluster_features(x)
    if z.shape[1] == 0 or len(z) < spec.k:
        raise NotApplicable(f"{len(z)} sites and {z.shape[1]} varying attributes: too few for k={spec.k}")
    rng = np.random.default_rng(spec.seed)
    best, best_sse = None, np.inf
    for _ in range(KMEANS_RESTARTS):  # k-means++ restarts: keep the tightest clustering
        centres, labels = kmeans2(z, spec.k, minit="++", rng=rng)
        sse = float(((z - centres[labels]) ** 2).sum())
        if sse < best_sse - 1e-12:
            best, best_sse = labels, sse
    assert best is not None
    sizes = np.bincount(best, minlength=spec.k)
    first = np.full(spec.k, len(best))
    np.minimum.at(first, best, np.arange(len(best)))
    order = np.lexsort((first, -sizes))  # largest cluster first, ties by first member
    rank = np.empty(spec.k, dtype=int)
    rank[order] = np.arange(spec.k)
    leak = f", left out as leaky {left_out}" if left_out else ""
    return _codes(rank[best], spec.k), f"k={spec.k}, seed={spec.seed}, {what}{leak}"


def n_random_regions(inputs: SchemeInputs) -> int:
    """Ecoregion sub-regions A-R holding at least ``min_sites`` of the sites."""
    counts = inputs.sites["subregion"].value_counts()
    return int(sum(int(counts.get(letter, 0)) >= inputs.min_sites for letter in LETTERS))


def random_regions(spec: RandomScheme, inputs: SchemeInputs) -> tuple[np.ndarray, str]:
    """An equal-size random partition (sizes differ by at most one), independent of input order."""
    n = spec.n_regions or n_random_regions(inputs)
    if n < 2:
        raise NotApplicable(f"{n} ecoregion sub-region(s) reach N={inputs.min_sites}: a partition needs two")
    n_sites = len(inputs.ids)
    by_id = np.argsort(inputs.ids, kind="stable")
    labels = np.empty(n_sites, dtype=int)
    labels[by_id[np.random.default_rng(spec.seed).permutation(n_sites)]] = np.arange(n_sites) % n
    return _codes(labels, n), f"{n} regions of {n_sites // n}-{-(-n_sites // n)} sites, seed={spec.seed}"


NULL_KIND = "null"
NULL_SUFFIX = "_null"
# Base seed of the size-matched null draws (each draw is seeded by it, its scheme and its index), fixed
# so a study's draws, and their trained models, never change with other settings.
NULL_SEED = 0


def null_label(scheme: str, draw: int) -> str:
    """The scheme label of one size-matched null draw of ``scheme`` (``kmeans`` -> ``kmeans_null07``);
    key-safe, so the plan keys its local sets ``local@kmeans_null07:<region>``."""
    return f"{scheme}{NULL_SUFFIX}{draw:02d}"


def null_of(label: str) -> tuple[str, int] | None:
    """Inverse of :func:`null_label`: (scheme, draw), or None for a label that is not a null draw."""
    base, sep, tail = str(label).rpartition(NULL_SUFFIX)
    return (base, int(tail)) if sep and base and tail.isdigit() and len(tail) == 2 else None


def size_matched_null(regions: pd.DataFrame, n_draws: int, seed: int) -> pd.DataFrame:
    """Per scheme of ``regions`` (columns scheme, kind, site_id, region: the long table of
    :func:`assign_schemes`), ``n_draws`` random permutations of its labels over its own sites.

    Each draw keeps the scheme's region sizes exactly (the same labels, shuffled), so its local
    models have the same training-set sizes as the scheme's: a scheme that beats its nulls carries
    information beyond the size of its regions. Rows labelled :func:`null_label`, kind ``null``;
    draws are independent of row order (sites sorted by id before permuting) and seeded per
    scheme and draw, so adding draws keeps the earlier ones. Null draws and ``random`` schemes get
    no nulls of their own."""
    if n_draws < 0 or n_draws > 99:
        raise InputError("null draws", f"must be in 0..99, got {n_draws}")
    frames = []
    base = regions[(regions["kind"] != NULL_KIND) & (regions["kind"] != "random")]
    too_long = [str(x) for x in base["scheme"].unique() if len(null_label(str(x), 0)) > 32]
    if n_draws and too_long:
        raise InputError(
            "stratification.schemes", f"names too long for null draws (25 characters at most): {too_long}"
        )
    for scheme, g in base.groupby("scheme", sort=True):
        g = g.sort_values("site_id", kind="stable")
        labels = g["region"].to_numpy()
        ids = g["site_id"].to_numpy()
        for d in range(n_draws):
            rng = np.random.default_rng([seed, d, *str(scheme).encode()])
            frames.append(
                pd.DataFrame(
                    {
                        "scheme": null_label(str(scheme), d),
                        "kind": NULL_KIND,
                        "site_id": ids,
                        "region": labels[rng.permutation(labels.size)],
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=list(REGION_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(REGION_COLUMNS)]


def planned_null_draws(specs: Sequence[AnyScheme], null_draws: int) -> int:
    """The null draws a study trains: ``null_draws`` when it runs a scheme besides the paper's
    ecoregions, else 0, so a study of the paper's scheme alone plans (and trains) no draws and
    keeps its partition keys."""
    return null_draws if any(not isinstance(s, EcoregionScheme) for s in specs) else 0


def assign_scheme(
    spec: AnyScheme, inputs: SchemeInputs, huc_polygons: gpd.GeoDataFrame | None = None
) -> tuple[np.ndarray, str]:
    """Region code per site (None: unassigned) and a description; NotApplicable passes through."""
    if isinstance(spec, EcoregionScheme):
        return ecoregion_regions(inputs), "EPA ecoregions grouped into the paper's sub-regions A-R"
    if isinstance(spec, Huc2Scheme):
        source = (
            "polygons"
            if huc_polygons is not None
            else ("GAGES-II HUC02" if inputs.gages2 is not None else "CAMELS huc_02")
        )
        return huc2_regions(spec, inputs, huc_polygons), f"HUC-{spec.digits} from {source}"
    if isinstance(spec, ClimateScheme):
        return climate_regions(spec, inputs)
    if isinstance(spec, KmeansScheme):
        return kmeans_regions(spec, inputs)
    if isinstance(spec, RandomScheme):
        return random_regions(spec, inputs)
    raise ConfigError("stratification", f"unknown scheme {spec!r}")


def assign_schemes(
    specs: Sequence[AnyScheme], inputs: SchemeInputs, null_draws: int = 0, null_seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every scheme's regions for the sites: a long table (:data:`REGION_COLUMNS`, assigned sites
    only) and a status table (:data:`STATUS_COLUMNS`) that says which schemes apply, how many
    regions reach ``min_sites`` and why a scheme does not apply. With ``null_draws`` the long
    table also holds each applicable scheme's size-matched null draws (:func:`size_matched_null`),
    which the plan turns into local sets like any scheme's; the status table lists schemes only."""
    frames, status = [], []
    for spec in specs:
        row = {"scheme": spec.label, "kind": spec.kind, "n_sites": len(inputs.ids)}
        try:
            polys = None
            if isinstance(spec, Huc2Scheme) and spec.polygons:
                polys = read_huc_polygons(spec.polygons, spec.code_column)
            regions, detail = assign_scheme(spec, inputs, polys)
        except NotApplicable as why:
            status.append(
                {
                    **row,
                    "applicable": False,
                    "n_assigned": 0,
                    "n_regions": 0,
                    "n_regions_min": 0,
                    "detail": str(why),
                }
            )
            continue
        assigned = pd.notna(regions)
        counts = pd.Series(regions[assigned]).value_counts()
        status.append(
            {
                **row,
                "applicable": True,
                "n_assigned": int(assigned.sum()),
                "n_regions": len(counts),
                "n_regions_min": int((counts >= inputs.min_sites).sum()),
                "detail": detail,
            }
        )
        frames.append(
            pd.DataFrame(
                {
                    "scheme": spec.label,
                    "kind": spec.kind,
                    "site_id": inputs.ids[assigned],
                    "region": regions[assigned].astype(str),
                }
            )
        )
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(REGION_COLUMNS))
    if null_draws:
        long = pd.concat([long, size_matched_null(long, null_draws, null_seed)], ignore_index=True)
    return long[list(REGION_COLUMNS)], pd.DataFrame(status, columns=list(STATUS_COLUMNS))
