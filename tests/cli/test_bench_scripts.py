"""The benchmark helper scripts vecpack bench calls: the peer drivers (FAISS, USearch, ScaNN) and the
recall/size plot."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"
DRIVER = BENCH / "faiss_driver.py"
USEARCH_DRIVER = BENCH / "usearch_driver.py"
SCANN_DRIVER = BENCH / "scann_driver.py"
PLOT = BENCH / "plot.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMED_FIELDS = ("train_seconds", "encode_vectors_per_second", "queries_per_second", "codes_per_second_per_core")
ROW_FIELDS = {"library", "spec", *TIMED_FIELDS, "bytes_per_vector", "compression_ratio",
              "recall@1", "recall@10", "recall@100", "mse"}
# Per driver: the module it imports, the package named when that is missing, and a valid spec.
PEER_DRIVERS = {
    "faiss": (DRIVER, "faiss", "faiss-cpu", "Flat"),
    "usearch": (USEARCH_DRIVER, "usearch", "usearch", "f32"),
    "scann": (SCANN_DRIVER, "scann", "scann", "bf"),
}


def run_script(script, *args, env=None):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env)


def driver_report(driver, dataset, specs, queries, threads, runs):
    """A driver's JSON report on `dataset`, asserting that it ran cleanly."""
    proc = run_script(driver, "--dataset", dataset, "--specs", specs, "--queries", queries, "--threads", threads,
                      "--runs", runs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def blocking_module(tmp_path, name):
    """An environment where importing `name` fails, as if the package were not installed."""
    shadow = tmp_path / f"without_{name}"
    shadow.mkdir()
    (shadow / f"{name}.py").write_text(f"raise ImportError('{name} hidden by the test')\n")
    return {**os.environ, "PYTHONPATH": str(shadow)}


@pytest.fixture
def euclidean_dataset(angular_dataset, tmp_path):
    """The same rows and queries with exact squared-L2 top-10 neighbours."""
    path = tmp_path / "small-16-euclidean.hdf5"
    with h5py.File(angular_dataset, "r") as src, h5py.File(path, "w") as dst:
        train, test = src["train"][:], src["test"][:]
        dists = ((test[:, None, :].astype(np.float64) - train[None, :, :]) ** 2).sum(axis=2)
        dst.create_dataset("train", data=train)
        dst.create_dataset("test", data=test)
        dst.create_dataset("neighbors", data=np.argsort(dists, axis=1, kind="stable")[:, :10].astype(np.int32))
        dst.attrs["distance"] = "euclidean"
    return path


def check_measured_row(row):
    """A row with the fields of every driver's rows and consistent min/median/max spreads."""
    assert set(row) == ROW_FIELDS, row.get("error")
    for field in TIMED_FIELDS:
        figure = row[field]
        assert set(figure) == {"median", "min", "max"}, field
        assert 0 <= figure["min"] <= figure["median"] <= figure["max"], field


def test_faiss_driver_measures_each_factory_string(angular_dataset):
    pytest.importorskip("faiss", reason="faiss-cpu is not installed")
    report = driver_report(DRIVER, angular_dataset, "Flat;SQ8;NotAnIndex", queries=50, threads=1, runs=2)
    assert report["library"] == "faiss" and report["build"].startswith("faiss ")
    assert (report["rows"], report["dim"], report["metric"]) == (2000, 16, "cos")
    assert (report["queries"], report["k"], report["threads"], report["runs"]) == (50, 10, 1, 2)
    flat, sq8, bad = report["results"]
    assert [r["spec"] for r in report["results"]] == ["Flat", "SQ8", "NotAnIndex"]

    assert flat["recall@1"] == flat["recall@10"] == flat["recall@100"] == 1.0
    assert flat["mse"] == pytest.approx(0.0, abs=1e-10)
    assert flat["bytes_per_vector"] == 64 and flat["compression_ratio"] == 1.0
    assert sq8["bytes_per_vector"] == 16 and sq8["compression_ratio"] == 4.0
    assert sq8["recall@10"] >= 0.9 and 0 < sq8["mse"] < 0.01

    assert "error" not in flat and "error" not in sq8
    assert "NotAnIndex" in bad["error"]
    assert bad["bytes_per_vector"] is None and bad["recall@10"] is None and bad["queries_per_second"] is None

    check_measured_row(flat)
    check_measured_row(sq8)


def test_faiss_driver_euclidean_and_train_sample(euclidean_dataset):
    pytest.importorskip("faiss", reason="faiss-cpu is not installed")
    # --factory: the driver's older name for --specs, still accepted.
    proc = run_script(DRIVER, "--dataset", euclidean_dataset, "--factory", "Flat;PQ4", "--queries", 20,
                      "--threads", 1, "--runs", 1, "--train-size", 500)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    flat, pq = report["results"]
    assert report["metric"] == "l2" and report["queries"] == 20
    assert flat["recall@10"] == 1.0 and flat["recall@100"] is None  # neighbours are only 10 wide
    assert pq["bytes_per_vector"] == 4 and pq["mse"] > 0 and "error" not in pq


@pytest.mark.parametrize("library", PEER_DRIVERS)
def test_peer_driver_missing_inputs(library, tmp_path):
    driver, _, package, spec = PEER_DRIVERS[library]
    proc = run_script(driver, "--dataset", tmp_path / "absent.hdf5", "--specs", spec)
    if proc.returncode == 3:  # library absent: its own report comes first
        assert json.loads(proc.stdout) == {"error": f"{package} is not installed"}
        return
    assert proc.returncode == 2 and "absent.hdf5" in proc.stderr and proc.stdout == ""

    not_ann = tmp_path / "plain.hdf5"
    with h5py.File(not_ann, "w") as f:
        f.create_dataset("train", data=np.zeros((4, 2), np.float32))
    proc = run_script(driver, "--dataset", not_ann, "--specs", spec)
    assert proc.returncode == 2 and "test" in proc.stderr and "neighbors" in proc.stderr

    proc = run_script(driver, "--dataset", not_ann, "--specs", " ; ")
    assert proc.returncode == 2 and "--specs" in proc.stderr


@pytest.mark.parametrize("library", PEER_DRIVERS)
def test_peer_driver_without_its_library(library, angular_dataset, tmp_path):
    driver, module, package, spec = PEER_DRIVERS[library]
    proc = run_script(driver, "--dataset", angular_dataset, "--specs", spec,
                      env=blocking_module(tmp_path, module))
    assert proc.returncode == 3
    assert json.loads(proc.stdout) == {"error": f"{package} is not installed"}


def test_usearch_driver_exact_search_per_scalar_type(angular_dataset):
    pytest.importorskip("usearch", reason="usearch is not installed; the comparison is not tested")
    report = driver_report(USEARCH_DRIVER, angular_dataset, "f32;f16;i8;q3", queries=50, threads=1, runs=2)
    assert report["library"] == "usearch" and report["build"].startswith("usearch ")
    assert (report["rows"], report["dim"], report["metric"], report["queries"]) == (2000, 16, "cos", 50)
    f32, f16, i8, bad = report["results"]
    for row in (f32, f16, i8):
        check_measured_row(row)
        assert row["library"] == "usearch" and row["train_seconds"]["max"] == 0

    assert f32["recall@1"] == f32["recall@10"] == f32["recall@100"] == 1.0
    assert f32["bytes_per_vector"] == 64 and f32["compression_ratio"] == 1.0
    assert f32["mse"] == pytest.approx(0.0, abs=1e-10)
    assert f16["bytes_per_vector"] == 32 and f16["recall@10"] >= 0.99 and 0 < f16["mse"] < 1e-5
    assert i8["bytes_per_vector"] == 16 and i8["compression_ratio"] == 4.0
    assert i8["recall@10"] >= 0.9 and 0 < i8["mse"] < 0.01

    assert "q3" in bad["error"] and bad["bytes_per_vector"] is None and bad["recall@10"] is None


def test_usearch_driver_euclidean(euclidean_dataset):
    pytest.importorskip("usearch", reason="usearch is not installed; the comparison is not tested")
    report = driver_report(USEARCH_DRIVER, euclidean_dataset, "f32;bf16", queries=20, threads=2, runs=1)
    f32, bf16 = report["results"]
    assert report["metric"] == "l2" and report["threads"] == 2
    assert f32["recall@10"] == 1.0 and f32["recall@100"] is None  # neighbours are only 10 wide
    assert f32["mse"] == pytest.approx(0.0, abs=1e-10)
    assert bf16["bytes_per_vector"] == 32 and bf16["recall@10"] >= 0.9 and bf16["mse"] > 0


def test_scann_driver_brute_force_float_and_int8(angular_dataset):
    pytest.importorskip("scann", reason="scann is not installed; the comparison is not tested")
    report = driver_report(SCANN_DRIVER, angular_dataset, "bf;bf-int8;tree", queries=50, threads=2, runs=2)
    assert report["library"] == "scann" and report["build"].startswith("scann ")
    assert (report["rows"], report["dim"], report["metric"], report["threads"]) == (2000, 16, "cos", 2)
    bf, int8, bad = report["results"]
    for row in (bf, int8):
        check_measured_row(row)
        assert row["library"] == "scann" and row["train_seconds"]["max"] == 0

    # Exact in float32; ScaNN's own kernels may round a borderline neighbour differently.
    assert bf["recall@1"] >= 0.999 and bf["recall@10"] >= 0.999 and bf["recall@100"] >= 0.999
    assert bf["bytes_per_vector"] == 64 and bf["mse"] == pytest.approx(0.0, abs=1e-10)
    # int8 codes plus one float multiplier per dimension spread over the rows.
    assert int8["bytes_per_vector"] == pytest.approx(16 + 4 * 16 / 2000)
    assert int8["recall@10"] >= 0.9 and 0 < int8["mse"] < 0.01

    assert "tree" in bad["error"] and bad["bytes_per_vector"] is None


def test_scann_driver_euclidean_single_thread(euclidean_dataset):
    pytest.importorskip("scann", reason="scann is not installed; the comparison is not tested")
    report = driver_report(SCANN_DRIVER, euclidean_dataset, "bf;bf-int8", queries=20, threads=1, runs=1)
    bf, int8 = report["results"]
    assert report["metric"] == "l2" and "1 thread" in report["build"]
    assert bf["recall@10"] >= 0.999 and bf["recall@100"] is None
    # Under squared L2 the int8 searcher also keeps each row's squared norm as a float.
    assert int8["bytes_per_vector"] == pytest.approx(16 + 4 + 4 * 16 / 2000)
    assert int8["recall@10"] >= 0.9 and int8["mse"] > 0


def test_scann_driver_anisotropic_quantization_specs(angular_dataset):
    pytest.importorskip("scann", reason="scann is not installed; the comparison is not tested")
    report = driver_report(SCANN_DRIVER, angular_dataset, "ah2;ah4:t=nan;ah2+int8@50;ah2+q4@5;ah0;ah2:t=x",
                           queries=50, threads=1, runs=1)
    ah2, ah4, reordered, *bad = report["results"]
    for row in (ah2, ah4, reordered):
        check_measured_row(row)
        assert row["library"] == "scann" and row["train_seconds"]["max"] == 0

    # 4 bits per block of D dimensions, plus 16 float32 centres per block (16 x 16 floats) over 2,000 rows.
    codebook = 16 * 16 * 4 / 2000
    assert ah2["bytes_per_vector"] == pytest.approx(8 * 0.5 + codebook)
    assert ah4["bytes_per_vector"] == pytest.approx(4 * 0.5 + codebook)
    # The reorder copy adds int8 rows and their per-dimension multipliers.
    assert reordered["bytes_per_vector"] == pytest.approx(8 * 0.5 + codebook + 16 + 4 * 16 / 2000)
    # The codes decode to the centres they pick: coarser blocks lose more, and reordering recovers recall.
    assert 0 < ah2["mse"] < ah4["mse"] and reordered["mse"] == pytest.approx(ah2["mse"])
    # (These tight 16-d clusters are hard for 4-bit codes; the ordering is what is checked.)
    assert ah4["recall@10"] < ah2["recall@10"] < reordered["recall@10"] and reordered["recall@10"] >= 0.6

    assert [row["spec"] for row in bad] == ["ah2+q4@5", "ah0", "ah2:t=x"]
    assert "reorder type" in bad[0]["error"] and "dimensions per block" in bad[1]["error"]
    assert "threshold" in bad[2]["error"]
    assert all(row["bytes_per_vector"] is None and row["recall@10"] is None for row in bad)


def load_plot_module():
    spec = importlib.util.spec_from_file_location("bench_plot", PLOT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pareto_front_keeps_only_undominated_points():
    front = load_plot_module().pareto_front([
        (100.0, 0.99, "f16"), (50.0, 0.95, "int8"), (50.0, 0.90, "worse-int8"),
        (25.0, 0.70, "int4"), (60.0, 0.93, "dominated"), (400.0, 0.99, "f32"), (12.0, 0.70, "tiny"),
    ])
    assert [p[2] for p in front] == ["tiny", "int8", "f16"]


def test_plot_writes_small_png_and_skips_errors(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    report = {
        "dataset": "/data/glove-100-angular.hdf5", "rows": 1183514, "dim": 100, "metric": "cos",
        "queries": 1000, "k": 10, "threads": 2, "runs": 3,
        "results": [
            {"library": "vecpack", "spec": "f32", "bytes_per_vector": 400, "recall@10": 1.0},
            {"library": "vecpack", "spec": "f16", "bytes_per_vector": 200, "recall@10": 0.999},
            {"library": "vecpack", "spec": "int8", "bytes_per_vector": 104, "recall@10": 0.97},
            {"library": "vecpack", "spec": "int8-slow", "bytes_per_vector": 120, "recall@10": 0.96},
            {"library": "vecpack", "spec": "pq?", "error": "unknown codec", "bytes_per_vector": None,
             "recall@10": None},
            {"library": "vecpack", "spec": "no-recall", "bytes_per_vector": 50, "recall@10": None},
            {"library": "faiss", "spec": "Flat", "bytes_per_vector": 400, "recall@10": 1.0},
            {"library": "faiss", "spec": "SQ8", "bytes_per_vector": 100, "recall@10": 0.96},
            {"library": "faiss", "spec": "NotAnIndex", "error": "could not parse index string NotAnIndex"},
        ],
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps(report))
    out = tmp_path / "chart.png"
    proc = run_script(PLOT, results, out)
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) < 200_000
    assert not (tmp_path / "chart.png.tmp").exists()

    proc = run_script(PLOT, results, out, "--title", "custom title")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_bad_inputs(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    proc = run_script(PLOT, tmp_path / "absent.json", tmp_path / "out.png")
    assert proc.returncode == 2 and "absent.json" in proc.stderr
    assert not (tmp_path / "out.png").exists()

    only_errors = tmp_path / "errors.json"
    only_errors.write_text(json.dumps({"dataset": "x.hdf5", "queries": 5,
                                       "results": [{"library": "faiss", "spec": "X", "error": "bad"}]}))
    proc = run_script(PLOT, only_errors, tmp_path / "empty.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "empty.png").read_bytes().startswith(PNG_SIGNATURE)


def test_plot_without_matplotlib(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": []}))
    proc = run_script(PLOT, results, tmp_path / "out.png", env=blocking_module(tmp_path, "matplotlib"))
    assert proc.returncode == 3 and "matplotlib" in proc.stderr
    assert not (tmp_path / "out.png").exists()
