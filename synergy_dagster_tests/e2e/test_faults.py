"""Faults: processes killed with SIGKILL mid-training or mid-write, and corrupted model files.

(a) a training process killed after its first checkpoint resumes to bit-identical weights;
(b) the same through Dagster (model partition on real SMAP), with the ``models`` row recording the
resume; (c) a DuckDB writer killed at random points leaves every partition old-or-new, never
partial; (d) a model file with flipped bytes is refused by its recorded hash, the evaluation names
the command that retrains it, and re-materialising retrains it. Plus the safety rules: no
``torch.load`` without ``weights_only=True``, no pickle/eval/exec, the UI bound to 127.0.0.1.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from synergy_dagster.errors import InputError
from synergy_dagster.models.normalization import Arrays

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.005


# The training problem of (a): the same arrays in the test and in the killed subprocess.
ARRAYS_KW = {"n_sites": 16, "n_days": 120, "target": "drift"}

TRAIN_KW = {"hidden": 16, "epochs": 8, "rho": 30, "batch": 8, "dropconnect": 0.3, "seed": 3,
            "max_iters_per_epoch": 10}  # a TrainSpec  # fmt: skip

TRAIN_SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[2]))
from synergy_dagster.models.training import TrainSpec, train_model
from synergy_dagster_tests.conftest import make_arrays
from synergy_dagster_tests.e2e.test_faults import ARRAYS_KW, TRAIN_KW
train_model(make_arrays(**ARRAYS_KW), TrainSpec(**TRAIN_KW), checkpoint_path=sys.argv[1], progress=False)
print("FINISHED", flush=True)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNERGY_", "DAGSTER_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # One intra-op thread: on a busy 2-core machine torch's spinning thread pool stalls for seconds.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra)
    return env


def _kill_when(proc: subprocess.Popen, path: Path, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as ``path`` exists (polled); fail if it never appears."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"process ended (rc {proc.returncode}) before {path} appeared:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(POLL_S)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread in this process too (the subprocesses use one): the same float sums, and no
    thread-pool stalls on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _block_of(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["blocks"])


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------- (a)


def test_sigkilled_training_resumes_to_identical_weights(
    tmp_path: Path, one_thread: None, synthetic_arrays: Callable[..., Arrays]
) -> None:
    from synergy_dagster.models.training import TrainSpec, train_model

    ckpt = tmp_path / "run" / "seed3.ckpt"
    proc = subprocess.Popen(  # one thread in both processes: the same float sums
        [sys.executable, "-c", TRAIN_SCRIPT, str(ckpt), "1"],
        cwd=ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _kill_when(proc, ckpt, timeout=120)
    killed_at = _block_of(ckpt)
    assert 1 <= killed_at < TRAIN_KW["epochs"], f"killed too late (checkpoint at block {killed_at})"

    arrays = synthetic_arrays(**ARRAYS_KW)
    resumed = train_model(arrays, TrainSpec(**TRAIN_KW), checkpoint_path=ckpt)
    fresh = train_model(arrays, TrainSpec(**TRAIN_KW))
    assert resumed.resumed_from_block == killed_at
    assert fresh.resumed_from_block == 0
    assert _same(resumed.state_dict, fresh.state_dict), "resumed weights differ from an uninterrupted run"
    assert resumed.losses == fresh.losses


def test_damaged_checkpoint_is_not_resumed(
    tmp_path: Path, one_thread: None, synthetic_arrays: Callable[..., Arrays]
) -> None:
    """A flipped byte in a checkpoint's tensor data still unpickles; its digest must catch it."""
    from synergy_dagster.models.training import TrainSpec, train_model

    kw = {**TRAIN_KW, "epochs": 2}
    arrays = synthetic_arrays(**ARRAYS_KW)
    ckpt = tmp_path / "seed3.ckpt"
    first = train_model(arrays, TrainSpec(**{**kw, "epochs": 1}), checkpoint_path=ckpt)
    raw = bytearray(ckpt.read_bytes())
    good = torch.load(ckpt, weights_only=True)["model_state"]
    i = _offset_of_tensor_bytes(raw, good["lstm.weight_ih_l0"])
    raw[i : i + 4] = bytes(b ^ 0x55 for b in raw[i : i + 4])
    ckpt.write_bytes(bytes(raw))
    damaged = torch.load(ckpt, weights_only=True)["model_state"]  # loads without any error ...
    assert not torch.equal(damaged["lstm.weight_ih_l0"], good["lstm.weight_ih_l0"])  # ... but wrong
    with pytest.warns(UserWarning, match="does not match its recorded digest"):
        again = train_model(arrays, TrainSpec(**kw), checkpoint_path=ckpt)
    assert again.resumed_from_block == 0
    assert _same(again.state_dict, train_model(arrays, TrainSpec(**kw)).state_dict)
    assert first.losses[0] == again.losses[0]


def _offset_of_tensor_bytes(raw: bytearray, t: torch.Tensor) -> int:
    needle = t.contiguous().numpy().tobytes()[:64]
    i = bytes(raw).find(needle)
    assert i > 0, "tensor bytes not found in the checkpoint"
    return i + 16


# ----------------------------------------------------------------------------------------- (c)

DB_WRITER = """
import sys
import numpy as np, pandas as pd
from synergy_dagster.store import MetadataStore

store = MetadataStore(sys.argv[1])
gen = int(sys.argv[2])
while True:
    for part in ("a", "b"):
        n = 20000 + gen  # every generation has its own row count: a partial set cannot pass as whole
        frame = pd.DataFrame({"domain": part, "experiment": "fault", "scenario": "s", "region": "r",
                              "seed": "0", "site_id": np.arange(n).astype(str), "model_key": f"gen{gen}",
                              "rmse": np.random.default_rng(gen).random(n), "n_days": 1})
        store.replace_rows("site_metrics", frame, {"domain": part})
        print(gen, flush=True)
        gen += 1
"""


def test_duckdb_killed_mid_write_stays_consistent(tmp_path: Path) -> None:
    from synergy_dagster.store import MetadataStore

    db = tmp_path / "synergy.duckdb"
    rnd = random.Random(7)
    gen = 0
    for cycle in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", DB_WRITER, str(db), str(gen)],
            cwd=ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        # both partitions committed once (the writer prints after each commit): the DB is in use
        first = [proc.stdout.readline() if proc.stdout else "" for _ in range(2)]
        assert all(f.strip().isdigit() for f in first), (
            f"writer failed: {first}{proc.stdout.read() if proc.stdout else ''}"
        )
        time.sleep(rnd.uniform(0.05, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        store = MetadataStore(db, lock_timeout_s=30)
        got = store.query(
            "SELECT domain, model_key, count(*) AS n, count(DISTINCT site_id) AS ids "
            "FROM site_metrics GROUP BY domain, model_key ORDER BY domain"
        )
        assert sorted(got["domain"]) == ["a", "b"], f"cycle {cycle}: {got}"
        for row in got.itertuples():
            g = int(row.model_key.removeprefix("gen"))
            assert row.n == row.ids == 20000 + g, f"cycle {cycle}: partial partition {row}"
        gen = int(got["model_key"].str.removeprefix("gen").astype(int).max()) + 1
        # and the file still takes writes
        store.replace_rows(
            "site_metrics", pd.DataFrame({"domain": ["zz"], "site_id": ["x"]}), {"domain": "zz"}
        )
        assert store.count("site_metrics", {"domain": "zz"}) == 1
        store.replace_rows("site_metrics", pd.DataFrame(columns=["domain"]), {"domain": "zz"})


# ------------------------------------------------------------------------------------ (b), (d)

DRIVER = """
import json, sys
import dagster as dg
from synergy_dagster.defs.definitions import defs

inst = dg.DagsterInstance.get()
PREPARE = ["source_files", "raw_ecoregions", "raw_pixels", "regions", "soil_moisture_sites",
           "soil_moisture_plan"]


def report(step, result):
    errors = [e.step_failure_data.error.message for e in result.all_events
              if e.event_type_value == "STEP_FAILURE" and e.step_failure_data.error]
    print("RESULT " + json.dumps({"step": step, "success": result.success, "errors": errors}), flush=True)


for step in sys.argv[1:]:
    if step == "prepare":
        r = defs.resolve_job_def("prepare_job").execute_in_process(
            instance=inst, asset_selection=[dg.AssetKey(k) for k in PREPARE], raise_on_error=False)
        report(step, r)
        print("PARTITIONS " + json.dumps(inst.get_dynamic_partitions("soil_moisture_sets")), flush=True)
    elif step.startswith("train="):
        r = defs.resolve_job_def("train_soil_moisture_job").execute_in_process(
            instance=inst, partition_key=step.split("=", 1)[1], raise_on_error=False)
        report(step, r)
    elif step == "evaluate":
        r = defs.resolve_job_def("evaluation_job").execute_in_process(
            instance=inst, asset_selection=[dg.AssetKey("evaluation")], raise_on_error=False)
        report(step, r)
"""
GLOBAL = "global:CONUS"
EPOCHS = 4


def _study_env(base: Path, real_data: Path) -> dict[str, str]:
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return _clean_env(
        DAGSTER_HOME=str(home), SYNERGY_DATA_DIR=str(base / "data"), SYNERGY_STUDY="real",
        SYNERGY_REAL_DATA=str(real_data), SYNERGY_DEVICE="cpu",
        # two partitions only (global:CONUS and local:F), so the evaluation can run quickly
        SYNERGY_OVERRIDES=";".join([
            "profile=demo", f"training.epochs={EPOCHS}", "budget.mode=paper", "run.domains=[soil_moisture]",
            "thresholds.min_sites_subregion=40", "thresholds.min_sites_roi=100000",
        ]),
    )  # fmt: skip


def _driver(tmp_path: Path, env: dict[str, str], *steps: str) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    if not script.exists():
        script.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(script), *steps], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _results(proc: subprocess.Popen, timeout: float = 300) -> tuple[dict[str, dict], list[str], str]:
    out, _ = proc.communicate(timeout=timeout)
    res = {}
    parts: list[str] = []
    for line in out.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            res[r["step"]] = r
        elif line.startswith("PARTITIONS "):
            parts = json.loads(line[11:])
    return res, parts, out


def _models_row(data: Path, key: str) -> pd.Series:
    import duckdb

    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        df = con.execute(
            "SELECT * FROM models WHERE domain='soil_moisture' AND set_key=? AND seed=0", [key]
        ).df()
    assert len(df) == 1, f"expected one models row for {key}, got {len(df)}"
    return df.iloc[0]


def test_dagster_model_partition_killed_resumed_and_corrupt_file_retrained(
    real_data: Path, tmp_path: Path
) -> None:
    from synergy_dagster.io_utils import file_sha256
    from synergy_dagster.models.files import load_state

    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    env_k, env_f = _study_env(killed, real_data), _study_env(fresh, real_data)
    model_dir = "data/models/soil_moisture/paper/global__CONUS"

    # (b) prepare + train global:CONUS, SIGKILLed once its first checkpoint is on disk; meanwhile an
    # uninterrupted study in a fresh folder trains both partitions (the two share the 2 cores)
    whole = _driver(tmp_path, env_f, "prepare", f"train={GLOBAL}", "train=local:F")
    proc = _driver(tmp_path, env_k, "prepare", f"train={GLOBAL}")
    ckpt = killed / model_dir / "seed0.ckpt"
    _kill_when(proc, ckpt, timeout=300)
    at = _block_of(ckpt)
    assert 1 <= at < EPOCHS, f"killed too late (checkpoint at block {at})"
    assert not (killed / model_dir / "seed0.pt").exists()  # no model file from the killed run
    resume = _driver(tmp_path, env_k, f"train={GLOBAL}")  # the same partition, run again

    res_w, parts, out_w = _results(whole)
    assert all(r["success"] for r in res_w.values()) and len(res_w) == 3, out_w[-4000:]
    assert set(parts) == {GLOBAL, "local:F"}, parts
    row_f = _models_row(fresh / "data", GLOBAL)
    assert row_f["resumed_from_block"] == 0
    w_fresh = load_state(row_f["path"], row_f["file_sha256"])

    # (d) flip bytes in the fresh study's global model file: the recorded hash refuses it
    pt = Path(row_f["path"])
    raw = bytearray(pt.read_bytes())
    i = _offset_of_tensor_bytes(raw, w_fresh["lstm.weight_ih_l0"])
    raw[i : i + 8] = bytes(b ^ 0xFF for b in raw[i : i + 8])
    pt.write_bytes(bytes(raw))
    corrupt_sha = file_sha256(pt)
    with pytest.raises(ValueError, match="does not match its recorded SHA-256"):
        load_state(pt, row_f["file_sha256"])
    # evaluation refuses it (naming the command), a re-materialisation retrains, evaluation then runs
    redo = _driver(tmp_path, env_f, "evaluate", f"train={GLOBAL}", "evaluate")

    res_r, _, out_r = _results(resume)
    assert res_r.get(f"train={GLOBAL}", {}).get("success"), out_r[-4000:]
    row = _models_row(killed / "data", GLOBAL)
    assert row["resumed_from_block"] == at
    assert row["file_sha256"] == file_sha256(row["path"])
    w_killed = load_state(row["path"], row["file_sha256"])
    assert _same(w_killed, w_fresh), "the resumed Dagster run ended with other weights"

    res_d, _, out_d = _results(redo)
    first_eval = [r for line in out_d.splitlines() if line.startswith('RESULT {"step": "evaluate"')
                  for r in [json.loads(line[7:])]][0]  # fmt: skip
    assert not first_eval["success"], out_d[-4000:]
    msg = "\n".join(first_eval["errors"])
    assert f"global__CONUS/{pt.name}" in msg and "SHA-256" in msg, msg
    assert "python -m synergy_dagster.cli study" in msg, msg
    assert res_d[f"train={GLOBAL}"]["success"], out_d[-4000:]
    assert res_d["evaluate"]["success"], out_d[-4000:]  # the last "evaluate" (after retraining)
    assert "reusing the intact model" not in out_d
    new = _models_row(fresh / "data", GLOBAL)
    assert new["created_at"] > row_f["created_at"]
    assert new["file_sha256"] == file_sha256(new["path"]) != corrupt_sha
    assert _same(load_state(new["path"], new["file_sha256"]), w_fresh)


# ------------------------------------------------------------------------------------ safety

_SCANNED = ("synergy_dagster", "bench", "scripts")
_BANNED_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
_BANNED_CALLS = {"eval", "exec", "compile", "__import__"}


def _python_files() -> list[Path]:
    return sorted(p for d in _SCANNED for p in (ROOT / d).rglob("*.py"))


def _unsafe_calls(tree: ast.AST, name: str) -> list[str]:
    """torch.load without weights_only=True, pickle-family imports, eval/exec, unsafe loaders."""
    bad: list[str] = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad += [f"{where} imports {m}" for m in mods if m.split(".")[0] in _BANNED_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kw = {k.arg: k.value for k in node.keywords}
        if isinstance(func, ast.Name) and func.id in _BANNED_CALLS:
            bad.append(f"{where} calls {func.id}()")
        if isinstance(func, ast.Attribute):
            owner = ast.unparse(func.value)
            full = f"{owner}.{func.attr}"
            if func.attr == "load" and owner == "torch":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    bad.append(f"{where} torch.load without weights_only=True")
            if full in {
                "pd.read_pickle",
                "pandas.read_pickle",
                "yaml.load",
                "yaml.unsafe_load",
                "torch.jit.load",
            }:
                bad.append(f"{where} calls {full}")
            if func.attr in {"load", "loads"} and owner in {"np", "numpy"}:
                ap = kw.get("allow_pickle")
                if isinstance(ap, ast.Constant) and ap.value is True:
                    bad.append(f"{where} np.load(allow_pickle=True)")
            if func.attr in {"run", "Popen", "call", "check_output", "check_call"} and owner == "subprocess":
                sh = kw.get("shell")
                if isinstance(sh, ast.Constant) and sh.value is True:
                    bad.append(f"{where} subprocess with shell=True")
    return bad


def test_no_unsafe_deserialisation_or_eval_in_the_source_tree() -> None:
    files = _python_files()
    assert len(files) > 20
    bad = [b for p in files for b in _unsafe_calls(ast.parse(p.read_text()), str(p.relative_to(ROOT)))]
    assert not bad, "unsafe calls:\n" + "\n".join(bad)
    # the scanner itself catches what it claims to
    probe = ast.parse(
        "import pickle\nimport torch\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
        "torch.load(p, weights_only=True)\neval(s)\nexec(s)\nimport numpy as np\n"
        "np.load(p, allow_pickle=True)\nimport pandas as pd\npd.read_pickle(p)\n"
    )
    found = _unsafe_calls(probe, "probe")
    assert len(found) == 7, found


def test_webserver_binds_localhost_by_default() -> None:
    text = (ROOT / "Makefile").read_text()
    m = re.search(r"^dev:.*?\n((?:\t.*\n?)+)", text, flags=re.M)
    assert m, "no dev target in the Makefile"
    cmd = [line.strip() for line in m.group(1).splitlines() if "dagster dev" in line]
    assert cmd, m.group(1)
    assert re.search(r"(-h|--host)[ =]127\.0\.0\.1\b", cmd[0]), cmd[0]
    assert "0.0.0.0" not in m.group(1)


def test_model_loading_refuses_a_pickle_payload(tmp_path: Path) -> None:
    """A .pt file that carries a code-running pickle is rejected by weights_only=True."""
    from synergy_dagster.io_utils import file_sha256
    from synergy_dagster.models.files import load_state

    class Boom:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "seed0.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"w": torch.zeros(1), "x": Boom()}, evil)
    with pytest.raises(
        InputError, match=r"seed0\.pt: not a readable model file \(UnpicklingError: Weights only"
    ):
        load_state(evil, file_sha256(evil))  # hash matches: only weights_only stands in the way
    assert not (tmp_path / "pwned").exists()
