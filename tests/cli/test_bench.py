"""vecpack bench and vecpack tune on small generated data: every figure present and consistent."""
import csv
import json

import numpy as np
import pytest

from conftest import run, write_glove

BAD_SPEC = 6


def test_bench_reports_every_figure_consistently(angular_dataset, tmp_path):
    out = tmp_path / "out"
    r = run("-q", "bench", angular_dataset, "--codecs", "f32;f16;int8", "--runs", "2", "--out", out)
    assert "| vecpack | `int8` |" in r.out and "recall@10" in r.out
    result = json.loads((out / "bench.json").read_text())
    assert result["rows"] == 2000 and result["queries"] == 50 and result["metric"] == "cos"
    rows = {row["spec"]: row for row in result["results"]}
    assert list(rows) == ["f32", "f16", "int8"]
    for spec, size in [("f32", 64), ("f16", 32), ("int8", 16)]:
        row = rows[spec]
        for key in ["train_seconds", "encode_vectors_per_second", "queries_per_second", "codes_per_second_per_core"]:
            s = row[key]
            assert s["min"] <= s["median"] <= s["max"], (spec, key, s)
        assert row["code_size"] == size
        # Bytes per vector: codes plus codec parameters; the file adds only headers and padding.
        assert row["bytes_per_vector"] == pytest.approx(size + row["parameter_bytes"] / 2000)
        assert 0 <= row["file_bytes"] / 2000 - row["bytes_per_vector"] < 16384 / 2000
        assert row["compression_ratio"] == pytest.approx(64 / row["bytes_per_vector"])
    assert rows["f32"]["recall@1"] == 1.0 and rows["f32"]["recall@10"] == 1.0 and rows["f32"]["recall@100"] == 1.0
    assert rows["f32"]["mse"] == 0.0
    assert rows["int8"]["recall@10"] >= 0.9 and rows["int8"]["mse"] > 0

    with open(out / "bench.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["spec"] for t in table] == ["f32", "f16", "int8"]
    assert float(table[0]["recall@10"]) == 1.0 and table[0]["queries_per_second_min"]
    assert (out / "bench.md").read_text().startswith("vecpack bench:")
    png = (out / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 200_000


def test_bench_on_a_text_table_with_a_queries_file(glove_small, tmp_path):
    src, words, x = glove_small
    queries = tmp_path / "queries.txt"
    write_glove(queries, ["q0", "q1", "q2"], x[:3] + 0.01)
    r = run("-q", "bench", src, "--queries", queries, "--codecs", "f32;int8", "--runs", "1", "--out", tmp_path / "o",
            "--no-plot", "--json")
    result = json.loads(r.out)
    assert result["queries"] == 3
    assert result["results"][0]["recall@10"] == 1.0
    # The exact neighbours were computed once and kept beside the output for the next run.
    cached = list((tmp_path / "o").glob("exact-neighbours-*.bin"))
    assert len(cached) == 1
    again = json.loads(run("-q", "bench", src, "--queries", queries, "--codecs", "f32", "--runs", "1",
                           "--out", tmp_path / "o", "--no-plot", "--json").out)
    assert again["results"][0]["recall@10"] == 1.0


def test_bench_rejects_a_bad_spec_before_working(angular_dataset, tmp_path):
    r = run("bench", angular_dataset, "--codecs", "f16;int9", "--out", tmp_path / "o", check=False)
    assert r.code == BAD_SPEC and "did you mean 'int8'" in r.err
    for bad in ["f16+int9@10", "f16+int8", "f16+int8@x", "f16+int8@0"]:
        r = run("bench", angular_dataset, "--codecs", bad, "--out", tmp_path / "o", check=False)
        assert r.code == BAD_SPEC, (bad, r.err)


def test_bench_with_rerank_rows(angular_dataset, tmp_path):
    r = run("-q", "bench", angular_dataset, "--codecs", "bf16;bf16+f32@2000", "--runs", "1", "--out", tmp_path / "o",
            "--no-plot", "--json")
    plain, reranked = json.loads(r.out)["results"]
    assert reranked["spec"] == "bf16+f32@2000"
    # Every row rescored exactly: the answer is the exact one, and the f32 rows count in the size.
    assert reranked["recall@10"] == 1.0 and reranked["recall@100"] == 1.0
    assert reranked["bytes_per_vector"] == pytest.approx(plain["bytes_per_vector"] + 64, abs=0.1)


def test_bench_beside_faiss(angular_dataset, tmp_path):
    pytest.importorskip("faiss", reason="faiss-cpu is not installed; the FAISS comparison is not tested")
    r = run("-q", "bench", angular_dataset, "--codecs", "f32;int8", "--faiss", "Flat;SQ8", "--runs", "1",
            "--out", tmp_path / "o", "--no-plot")
    assert "| FAISS | `SQ8` |" in r.out and "| vecpack/FAISS |" in r.out and "FAISS: faiss" in r.out
    # '-' leaves a codec without a counterpart: SQ8 pairs with int8, the second codec.
    r = run("-q", "bench", angular_dataset, "--codecs", "f32;int8", "--faiss", "-;SQ8", "--runs", "1",
            "--out", tmp_path / "p", "--no-plot")
    lines = [line for line in r.out.splitlines() if line.startswith("| ")]
    specs = [line.split("|")[2].strip() for line in lines[1:]]  # after the header row
    assert specs == ["`f32`", "`int8`", "`SQ8`", ""], r.out


def test_tune_picks_lossless_when_generous_and_fits_a_tight_budget(angular_dataset, tmp_path):
    generous = json.loads(run("-q", "tune", angular_dataset, "--budget", "1000", "--json").out)
    assert generous["winner"]["spec"] == "f32" and generous["winner"]["mse"] == 0.0
    tight = json.loads(run("-q", "tune", angular_dataset, "--budget", "20", "--json").out)
    assert tight["winner"]["spec"] == "int8" and tight["winner"]["bytes_per_vector"] <= 20
    by_mse = json.loads(run("-q", "tune", angular_dataset, "--budget", "40", "--metric", "mse", "--json").out)
    assert by_mse["winner"]["spec"] == "f16"  # the smaller error of the 32-byte codecs


def test_tune_sizes_candidates_to_the_budget(angular_dataset):
    # 16-d rows, 2,000 of them: a 6-byte budget holds 10 4-bit sub-quantizers beside their
    # codebooks (1 KiB / 2,000 rows), which no fixed grid entry offers; the winner uses the budget.
    result = json.loads(run("-q", "tune", angular_dataset, "--budget", "6", "--json").out)
    winner = result["winner"]
    assert winner["spec"] == "pq:m=10,nbits=4" and 5 < winner["bytes_per_vector"] <= 6
    assert winner["recall@10"] > 0.45  # measured 0.494
    # Every finalist stays within the budget.
    assert all(row["bytes_per_vector"] <= 6 for row in result["results"])


def test_tune_for_recall_and_apply(angular_dataset, glove_small, tmp_path):
    out = tmp_path / "tuned.vecpack"
    src, _, _ = glove_small
    result = json.loads(run("-q", "tune", angular_dataset, "--recall", "0.9", "--apply", src, out, "--json").out)
    assert result["winner"]["spec"] == "int8"  # the smallest codec with recall@10 >= 0.9
    info = json.loads(run("inspect", "--json", out).out)
    assert info["codec"] == "int8" and info["rows"] == 500


def test_tune_errors(angular_dataset):
    r = run("tune", angular_dataset, "--budget", "0.5", check=False)
    assert r.code == 1 and "no codec fits 0.5 bytes per vector" in r.err
    r = run("tune", angular_dataset, check=False)
    assert r.code == 1 and "--budget" in r.err


def test_tune_time_limit_reports_what_it_skipped(angular_dataset):
    result = json.loads(run("-q", "tune", angular_dataset, "--budget", "1000", "--time-limit", "0.000001", "--json").out)
    assert result["winner"]["spec"] == "f32"  # the first candidate is always measured
    assert result["skipped"][:3] == ["f16", "bf16", "int8"]  # then every other codec in the registry


def test_tune_index_picks_lists_nprobe_and_rerank_for_a_recall(angular_dataset, tmp_path):
    out = tmp_path / "tuned.vecpack"
    result = json.loads(run("-q", "tune", angular_dataset, "--recall", "0.9", "--index", "--lists", "8,16",
                            "--apply", angular_dataset, out, "--json").out)
    assert result["queries"] == {"tune": 25, "confirm": 25}
    winner, trials = result["winner"], result["trials"]
    assert len(trials) == 2 * 6  # two list counts x rerank depths 0, 20, 30, 50, 100, 200
    assert winner["reached"] and winner["recall@10"] >= 0.9 and 1 <= winner["nprobe"] <= winner["lists"]
    assert winner["spec"] == f"ivf:lists={winner['lists']}/pq:m=8,nbits=4"  # cos: no residuals
    reached = [t for t in trials if t["reached"]]
    assert winner["queries_per_second"] == max(t["queries_per_second"] for t in reached)
    assert 0 <= winner["confirmed_recall@10"] <= 1
    # The curve of the winner on every query: recall reaches the target at the chosen nprobe.
    curve = dict((int(p), r) for p, r in result["curve"])
    assert curve[winner["nprobe"]] >= 0.85 and max(curve) == winner["lists"]
    # The applied table carries that curve, so a recall target picks the tuned nprobe and depth.
    info = json.loads(run("inspect", "--json", out).out)
    assert info["recall_curve"]["measured_on"] == "queries" and info["recall_curve"]["queries"] == 50
    assert info["recall_curve"]["rerank"] == winner["rerank"]
    assert "50 tuning queries" in run("inspect", out).out
    assert run("search", out, "--recall", "0.9", "-k", "3", "--vector", ",".join(["0.1"] * 16)).code == 0


def test_tune_index_errors(angular_dataset):
    r = run("tune", angular_dataset, "--index", "--budget", "20", check=False)
    assert r.code != 0 and "excludes" in r.err
    r = run("tune", angular_dataset, "--index", check=False)
    assert r.code != 0 and "tune --index needs --recall R" in r.err
    r = run("tune", angular_dataset, "--index", "--recall", "0.9", "--lists", "5000", check=False)
    assert r.code != 0 and "--lists 5000 must be within 1..2000" in r.err
