"""Transform chains and funnel search from the command line."""
import json

from conftest import run

BAD_SPEC = 6


def search_json(*args):
    return [[n["row"] for n in q["neighbors"]] for q in json.loads(run("search", *args, "--json").out)]


def test_codecs_lists_the_transforms():
    listed = {c["name"]: c for c in json.loads(run("codecs", "--json").out)}
    for name in ["whiten", "pca", "rotate", "l2norm", "matryoshka"]:
        assert listed[name]["kind"] == "transform"
    assert [p["name"] for p in listed["whiten"]["params"]] == ["k", "eps", "normalize"]


def test_transform_chains_compress_search_and_funnel(glove_small, tmp_path):
    src, words, x = glove_small
    for spec in ["pca:k=8/int8", "whiten:k=12/f16", "rotate/int8", "matryoshka:dim=10/int8"]:
        out = tmp_path / "t.vecpack"
        run("-q", "compress", src, "-o", out, "--codec", spec, "--train-size", "0")
        info = json.loads(run("inspect", "--json", out).out)
        assert info["codec"].split("/")[0].split(":")[0] == spec.split("/")[0].split(":")[0]
        assert info["dim"] == 16
        plain = search_json(out, "w1", "w2", "w3", "-k", "5")
        # Large shortlists: the funnel finds exactly what a full search finds.
        assert search_json(out, "w1", "w2", "w3", "-k", "5", "--funnel", "2:500,4:500,full") == plain
        assert run("verify", out).code == 0


def test_transform_errors(glove_small, tmp_path):
    src, _, _ = glove_small
    r = run("compress", src, "-o", tmp_path / "x.vecpack", "--codec", "whiten:k=32/f32", check=False)
    assert r.code == BAD_SPEC and "k=32 is out of range for input dimension 16 (1..16)" in r.err
    r = run("compress", src, "-o", tmp_path / "x.vecpack", "--codec", "matryoshka/f32", check=False)
    assert r.code == BAD_SPEC and "dim is required" in r.err
    pq = tmp_path / "pq.vecpack"
    run("-q", "compress", src, "-o", pq, "--codec", "pq:m=4,nbits=4")
    r = run("search", pq, "w1", "--funnel", "4:100", check=False)
    assert r.code != 0 and "dimension by dimension" in r.err
    f16 = tmp_path / "f16.vecpack"
    run("-q", "compress", src, "-o", f16, "--codec", "f16")
    r = run("search", f16, "w1", "--funnel", "4:x", check=False)
    assert r.code == BAD_SPEC and "not a positive candidate count" in r.err


def test_eval_funnel(angular_dataset, tmp_path):
    packed = tmp_path / "f16.vecpack"
    run("-q", "compress", angular_dataset, "-o", packed, "--codec", "f16")
    full = json.loads(run("eval", packed, "--dataset", angular_dataset, "--runs", "1", "--json").out)
    wide = json.loads(run("eval", packed, "--dataset", angular_dataset, "--runs", "1", "--json",
                          "--funnel", "8:2000,full").out)
    assert wide["funnel"] == "8:2000,full"
    for key in ["recall@1", "recall@10", "recall@100"]:
        assert wide[key] == full[key]
    narrow = json.loads(run("eval", packed, "--dataset", angular_dataset, "--runs", "1", "--json",
                            "--funnel", "4:150,full").out)
    assert 0.5 < narrow["recall@10"] <= full["recall@10"]
    assert narrow["qps"] > 0
