"""The vecpack command line, used as a user would: conversions, compression, search, errors."""
import json
import struct

import h5py
import numpy as np
import pytest

from conftest import DATA, write_glove

# Exit codes, one per error type (tools/cli_common.h).
FAILURE, USAGE, IO, FORMAT, PARSE, SPEC, NOT_FOUND = 1, 2, 3, 4, 5, 6, 7


def test_version_names_kernels(vp):
    out = vp("--version").out
    assert out.startswith("vecpack ") and "kernels:" in out


def test_codecs_lists_the_registry(vp):
    codecs = json.loads(vp("codecs", "--json").out)
    names = [c["name"] for c in codecs]
    assert names[:4] == ["f32", "f16", "bf16", "int8"]
    assert "exact_decode" in codecs[0]["capabilities"]
    assert "int8" in vp("codecs").out


def test_convert_inspect_get_search_verify(vp, glove_small, tmp_path):
    src, words, x = glove_small
    out = tmp_path / "t.vecpack"
    vp("-q", "convert", src, out)
    info = json.loads(vp("inspect", "--json", out).out)
    assert info["rows"] == 500 and info["dim"] == 16 and info["codec"] == "f32" and info["keys"]
    assert info["metric"] == "cos" and info["source"]["format"] == "glove"
    assert [s["type"] for s in info["sections"]] == ["META", "CODC", "CODE", "VOCB"]
    assert "bytes per vector" in vp("inspect", out).out

    got = vp("get", out, "w7", "w11").out.splitlines()
    assert got[0].split()[0] == "w7"
    assert np.array_equal(np.array(got[0].split()[1:], dtype=np.float32), x[7])  # bit exact
    as_json = json.loads(vp("get", "--json", out, "w3").out)
    assert np.array_equal(np.array(as_json["w3"], dtype=np.float32), x[3])

    res = json.loads(vp("search", out, "w7", "-k", "5", "--json").out)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn[7]
    sims[7] = -np.inf
    expected = [f"w{i}" for i in np.argsort(-sims, kind="stable")[:5]]
    assert [n["key"] for n in res[0]["neighbors"]] == expected
    assert res[0]["neighbors"][0]["score"] == pytest.approx(float(np.max(sims)), abs=1e-5)

    vec = ",".join(repr(float(v)) for v in x[7])
    res = json.loads(vp("search", out, "--vector", vec, "-k", "1", "--json").out)
    assert res[0]["neighbors"][0]["key"] == "w7"

    assert vp("verify", out).code == 0


def test_compress_and_eval_against_reference(vp, glove_small, tmp_path):
    src, _, _ = glove_small
    ref = tmp_path / "t.vecpack"
    vp("-q", "convert", src, ref)
    for codec, floor, size in [("f32", 1.0, 64), ("f16", 0.99, 32), ("int8", 0.9, 16)]:
        out = tmp_path / f"t.{codec}.vecpack"
        vp("-q", "compress", ref, "-o", out, "--codec", codec)
        e = json.loads(vp("eval", out, "--reference", ref, "--queries", "100", "-k", "10", "--json").out)
        for key in ["bytes_per_vector", "recall@1", "recall@10", "recall@100", "mse", "qps"]:
            assert key in e
        assert e["code_size"] == size
        assert e["recall@10"] >= floor, (codec, e)
        if codec == "f32":
            assert e["mse"] == 0.0 and e["recall@100"] == 1.0


def test_compress_reads_text_and_hdf5_directly(vp, glove_small, tmp_path):
    src, _, x = glove_small
    out = tmp_path / "direct.vecpack"
    vp("-q", "compress", src, "-o", out, "--codec", "int8")
    assert json.loads(vp("inspect", "--json", out).out)["codec"] == "int8"

    h5 = tmp_path / "ann.hdf5"
    q = x[:20] + 0.01
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    nb = np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :100].astype(np.int32)
    with h5py.File(h5, "w") as f:
        f.attrs["distance"] = "angular"
        f.create_dataset("train", data=x)
        f.create_dataset("test", data=q.astype(np.float32))
        f.create_dataset("neighbors", data=nb)
    packed = tmp_path / "ann.vecpack"
    vp("-q", "compress", h5, "-o", packed, "--codec", "f32")
    assert json.loads(vp("inspect", "--json", packed).out)["metric"] == "cos"
    e = json.loads(vp("eval", packed, "--dataset", h5, "--queries", "20", "--json").out)
    assert e["recall@1"] == 1.0 and e["recall@10"] == 1.0 and e["recall@100"] == 1.0
    assert e["bytes_per_vector"] == pytest.approx(64, abs=1)


def test_sample_data_converts(vp, tmp_path):
    sample = DATA / "glove.6B.100d.15k.txt.gz"
    out = tmp_path / "sample.vecpack"
    vp("-q", "convert", sample, out, "--limit", "2000")
    info = json.loads(vp("inspect", "--json", out).out)
    assert info["rows"] == 2000 and info["dim"] == 100
    res = json.loads(vp("search", out, "king", "-k", "3", "--json").out)
    assert "queen" in [n["key"] for n in res[0]["neighbors"]]


def test_sample_data_converts_to_npy_and_fvecs(vp, tmp_path):
    import gzip
    import io

    sample = DATA / "glove.6B.100d.15k.txt.gz"
    rows = []
    with gzip.open(sample, "rt", encoding="utf-8") as f:
        for line in f:
            rows.append(np.array(line.split()[1:], dtype=np.float32))
            if len(rows) == 200:
                break
    expected = np.stack(rows)

    npy = tmp_path / "sample.npy"
    vp("-q", "convert", sample, npy, "--limit", "200")
    got = np.load(npy)
    assert got.dtype == np.float32 and got.shape == (200, 100)
    assert np.array_equal(got, expected)  # bit exact
    saved = io.BytesIO()
    np.save(saved, expected)
    assert npy.read_bytes() == saved.getvalue()  # the very bytes np.save writes

    fvecs = tmp_path / "sample.fvecs"
    vp("-q", "convert", sample, fvecs, "--limit", "200")
    records = np.fromfile(fvecs, dtype="<i4").reshape(200, 101)  # per record: d, then d float32
    assert np.all(records[:, 0] == 100)
    assert np.array_equal(records[:, 1:].copy().view("<f4"), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_written_by_numpy_converts(vp, tmp_path, dtype, order):
    x = np.asarray(np.random.default_rng(3).normal(size=(300, 24)).astype(dtype), order=order)
    src = tmp_path / "x.npy"
    np.save(src, x)
    expected = x.astype(np.float32)

    out = tmp_path / "x.vecpack"
    vp("-q", "convert", src, out)
    info = json.loads(vp("inspect", "--json", out).out)
    assert info["rows"] == 300 and info["dim"] == 24 and not info["keys"]
    assert info["source"]["format"] == "npy"
    for line in vp("get", "--row", out, "0", "7", "299").out.splitlines():
        row, *values = line.split()
        assert np.array_equal(np.array(values, dtype=np.float32), expected[int(row)])

    back = tmp_path / "back.npy"
    vp("-q", "convert", out, back)
    assert np.array_equal(np.load(back), expected)

    cut = tmp_path / "cut.npy"
    cut.write_bytes(src.read_bytes()[:-5])
    r = vp("convert", cut, tmp_path / "cut.vecpack", check=False)
    assert r.code == PARSE and "cut.npy" in r.err and "truncated" in r.err


# ---------------------------------------------------------------- bad input: one clear line, a distinct code

def test_unknown_codec_and_bad_argument(vp, glove_small, tmp_path):
    src, _, _ = glove_small
    r = vp("compress", src, "-o", tmp_path / "x.vecpack", "--codec", "int9", check=False)
    assert r.code == SPEC and "did you mean 'int8'" in r.err and r.err.count("\n") == 1
    r = vp("compress", src, "-o", tmp_path / "x.vecpack", "--codec", "int8:bits=4", check=False)
    assert r.code == SPEC and "unknown argument 'bits'" in r.err
    assert not (tmp_path / "x.vecpack").exists()


def test_missing_file_and_missing_key(vp, glove_small, tmp_path):
    r = vp("inspect", tmp_path / "nope.vecpack", check=False)
    assert r.code == IO and "nope.vecpack" in r.err and "No such file" in r.err
    src, _, _ = glove_small
    out = tmp_path / "t.vecpack"
    vp("-q", "convert", src, out)
    r = vp("get", out, "unknown-word", check=False)
    assert r.code == NOT_FOUND and "unknown-word" in r.err
    assert vp("search", out, check=False).code == FAILURE
    assert vp("frobnicate", check=False).code == USAGE


def test_damaged_and_newer_files(vp, glove_small, tmp_path):
    src, _, _ = glove_small
    good = tmp_path / "t.vecpack"
    vp("-q", "convert", src, good)
    info = json.loads(vp("inspect", "--json", good).out)
    data = bytearray(good.read_bytes())
    for s in info["sections"]:
        bad = tmp_path / f"bad-{s['type']}.vecpack"
        flipped = bytearray(data)
        flipped[s["offset"] + s["length"] // 2] ^= 0x20
        bad.write_bytes(flipped)
        r = vp("verify", bad, check=False)
        assert r.code == FORMAT and f"section {s['type']}" in r.err, r.err

    newer = bytearray(data)
    newer[8:10] = struct.pack("<H", 2)
    (tmp_path / "newer.vecpack").write_bytes(newer)
    r = vp("inspect", tmp_path / "newer.vecpack", check=False)
    assert r.code == FORMAT and ("newer" in r.err or "checksum" in r.err)

    (tmp_path / "text.vecpack").write_bytes(b"the 0.1 0.2\n")
    r = vp("inspect", tmp_path / "text.vecpack", check=False)
    assert r.code == FORMAT and "not a .vecpack file" in r.err

    for cut in [10, 64, len(data) // 2, len(data) - 1]:
        (tmp_path / "cut.vecpack").write_bytes(data[:cut])
        r = vp("inspect", tmp_path / "cut.vecpack", check=False)
        assert r.code == FORMAT, (cut, r.err)


def test_word2vec_header_disagrees_with_body(vp, tmp_path):
    p = tmp_path / "bad.w2v"
    p.write_text("5 3\na 1 2 3\nb 4 5 6\n")
    r = vp("convert", "--from", "word2vec", p, tmp_path / "o.vecpack", check=False)
    assert r.code == PARSE and "bad.w2v" in r.err and "5" in r.err


def test_word2vec_binary_cut_mid_vector(vp, tmp_path):
    p = tmp_path / "cut.bin"
    body = b"2 4\n" + b"a " + struct.pack("<4f", 1, 2, 3, 4) + b"\n" + b"b " + struct.pack("<2f", 5, 6)
    p.write_bytes(body)
    r = vp("convert", "--from", "word2vec-bin", p, tmp_path / "o.vecpack", check=False)
    assert r.code == PARSE and "cut.bin" in r.err


def test_nan_rejected_with_its_line_unless_allowed(vp, tmp_path):
    p = tmp_path / "nan.txt"
    write_glove(p, ["a", "b", "c"], [[1, 2], [3, float("nan")], [5, 6]])
    r = vp("convert", p, tmp_path / "o.vecpack", check=False)
    assert r.code == PARSE and ":2" in r.err
    vp("-q", "convert", p, tmp_path / "o.vecpack", "--allow-nan")
    assert json.loads(vp("inspect", "--json", tmp_path / "o.vecpack").out)["rows"] == 3


def test_failed_compress_leaves_existing_output_untouched(vp, glove_small, tmp_path):
    src, _, _ = glove_small
    out = tmp_path / "keep.vecpack"
    vp("-q", "convert", src, out)
    before = out.read_bytes()
    p = tmp_path / "nan.txt"
    write_glove(p, ["a", "b"], [[1.0] * 16, [float("nan")] * 16])
    r = vp("compress", p, "-o", out, "--codec", "int8", check=False)
    assert r.code != 0
    assert out.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith("keep")) == ["keep.vecpack"]


def test_write_failing_midway_leaves_existing_output_untouched(glove_small, tmp_path):
    """The file-size limit makes the write fail partway (as a full disk would)."""
    import resource
    import signal
    import subprocess

    from conftest import BIN

    src, _, _ = glove_small
    out = tmp_path / "keep.vecpack"
    subprocess.run([BIN, "-q", "convert", src, out], check=True)
    before = out.read_bytes()

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    r = subprocess.run([BIN, "-q", "compress", src, "-o", out, "--codec", "f32"], capture_output=True, text=True,
                       preexec_fn=limit_file_size)
    assert r.returncode == IO and "keep.vecpack" in r.stderr and "File too large" in r.stderr, r.stderr
    assert out.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith("keep")] == ["keep.vecpack"]


def test_compress_fit_subwords_answers_unknown_words(vp, tmp_path):
    rng = np.random.default_rng(2)
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to"]
    meaning = {s: rng.normal(size=8) for s in syllables}
    words = [a + b + c for a in syllables for b in syllables for c in syllables if a + b + c != "kalomi"]
    write_glove(tmp_path / "w.txt", words, [(meaning[w[:2]] + meaning[w[2:4]] + meaning[w[4:]]) / 3 for w in words])
    out = tmp_path / "w.vecpack"
    vp("compress", tmp_path / "w.txt", "-o", out, "-c", "f16", "--fit-subwords", "buckets=2048,minn=2,maxn=4")
    got = np.array([float(v) for v in vp("get", out, "kalomi").out.split()[1:]])
    want = (meaning["ka"] + meaning["lo"] + meaning["mi"]) / 3
    assert got @ want / (np.linalg.norm(got) * np.linalg.norm(want)) > 0.9
    bad = vp("compress", tmp_path / "w.txt", "-o", out, "--fit-subwords", "buckets=x", check=False)
    assert bad.code != 0 and "--fit-subwords: 'buckets=x' is not name=integer" in bad.err


def test_inspect_counts_shared_parameters_in_the_ratio(vp, tmp_path, glove_small):
    out = tmp_path / "qr.vecpack"
    vp("compress", glove_small[0], "-o", out, "-c", "qr:m=20,op=add")
    info = json.loads(vp("inspect", "--json", out).out)
    stored = info["bytes"]["codes"] + info["bytes"]["codec_parameters"]
    assert info["bytes"]["codes"] == 0 and info["code_size"] == 0
    assert info["compression_ratio"] == pytest.approx(500 * 16 * 4 / stored)
    assert info["compression_ratio"] > 1
    assert "the rest in parameters shared by the rows" in vp("inspect", out).out


def syllable_words(rng, exclude=()):
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to"]
    meaning = {s: rng.normal(size=8) for s in syllables}
    words = [a + b + c for a in syllables for b in syllables for c in syllables if a + b + c not in exclude]
    return meaning, words, [(meaning[w[:2]] + meaning[w[2:4]] + meaning[w[4:]]) / 3 for w in words]


def test_compress_subword_codec_searches_by_unknown_words(vp, tmp_path):
    meaning, words, vectors = syllable_words(np.random.default_rng(3), exclude=("kalomi",))
    write_glove(tmp_path / "w.txt", words, vectors)
    out = tmp_path / "s.vecpack"
    vp("compress", tmp_path / "w.txt", "-o", out, "-c", "subword:rows=2048,minn=2,maxn=4,keep=50")
    info = json.loads(vp("inspect", "--json", out).out)
    assert info["codec"] == "subword:rows=2048,minn=2,maxn=4,keep=50" and info["code_size"] == 0
    got = np.array([float(v) for v in vp("get", out, "kalomi").out.split()[1:]])
    want = (meaning["ka"] + meaning["lo"] + meaning["mi"]) / 3
    assert got @ want / (np.linalg.norm(got) * np.linalg.norm(want)) > 0.9
    # An unknown word queries like any other; its nearest words share its syllables.
    found = vp("search", out, "kalomi", "-k", "3", "--json").out
    neighbours = [hit["key"] for hit in json.loads(found)[0]["neighbors"]]
    assert all(sum(s in n for s in ("ka", "lo", "mi")) >= 2 for n in neighbours), neighbours
    missing = vp("search", tmp_path / "none.vecpack", "kalomi", check=False)
    assert missing.code != 0


def test_compress_counts_rank_rows_for_mixdim(vp, tmp_path, glove_small):
    src = glove_small[0]
    # HDF5-like sources are not sorted by frequency: mixdim asks for counts.
    npy = tmp_path / "x.npy"
    np.save(npy, np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))
    bad = vp("compress", npy, "-o", tmp_path / "m.vecpack", "-c", "mixdim:budget=16", check=False)
    assert bad.code != 0
    assert "frequencies missing" in bad.err and "'npy'" in bad.err and "--counts" in bad.err and "order=file" in bad.err
    counts = tmp_path / "counts.txt"
    counts.write_text("".join(f"{i * 7 % 300}\n" for i in range(300)))
    out = tmp_path / "m.vecpack"
    vp("compress", npy, "-o", out, "-c", "mixdim:budget=16", "--counts", counts)
    info = json.loads(vp("inspect", "--json", out).out)
    assert info["counts"] and any(s["type"] == "FREQ" and s["length"] == 300 * 8 for s in info["sections"])
    # Keyed tables take 'key count' lines; unknown keys are skipped with a note.
    keyed = tmp_path / "keyed.txt"
    keyed.write_text("w3 50\nw1 70\nnot-a-key 9\n")
    r = vp("compress", src, "-o", tmp_path / "k.vecpack", "-c", "mixdim:budget=32,order=counts", "--counts", keyed)
    assert "1 keys are not in the table" in r.err
    bad = tmp_path / "bad.txt"
    bad.write_text("w3 many\n")
    r = vp("compress", src, "-o", tmp_path / "k.vecpack", "-c", "int8", "--counts", bad, check=False)
    assert r.code != 0 and "bad.txt:1: 'many' is not a count" in r.err


def test_compress_row_tables_share_one_hash_pool(vp, tmp_path):
    rng = np.random.default_rng(4)
    keys = [f"user:{i}" for i in range(200)] + [f"item:{i}" for i in range(200)]
    write_glove(tmp_path / "f.txt", keys, rng.normal(size=(400, 6)))
    a, b = tmp_path / "a.vecpack", tmp_path / "b.vecpack"
    vp("compress", tmp_path / "f.txt", "-o", a, "-c", "hash:rows=64,weights=off", "--row-tables", ":")
    vp("compress", tmp_path / "f.txt", "-o", b, "-c", "hash:rows=64,weights=off")
    c = tmp_path / "c.vecpack"
    vp("compress", tmp_path / "f.txt", "-o", c, "-c", "hash:rows=64,weights=off", "--row-tables", "#")
    rows = {name: vp("get", path, "item:5", "user:5").out for name, path in (("a", a), ("b", b), ("c", c))}
    assert rows["a"] != rows["b"]  # users and items are two tables: the items hash elsewhere
    assert rows["c"] == rows["b"]  # no key has a '#': one table, table 0, as without the option
    r = vp("compress", tmp_path / "f.txt", "-o", a, "-c", "int8", "--row-tables", ":", check=False)
    assert r.code != 0 and "takes no feature table per row" in r.err
    # Row tables are taken from the rows the subword fit keeps.
    vp("compress", tmp_path / "f.txt", "-o", a, "-c", "hash:rows=64", "--row-tables", ":", "--fit-subwords",
       "buckets=256,keep=300", "--subword-codec", "f16")
    assert json.loads(vp("inspect", "--json", a).out)["rows"] == 300


def test_compress_refuses_to_shard_a_shared_parameter_codec(vp, tmp_path, glove_small):
    r = vp("compress", glove_small[0], "-o", tmp_path / "shards", "-c", "qr:m=20", "--shard-rows", "100", check=False)
    assert r.code != 0 and "cannot be split into shards (--shard-rows)" in r.err
    assert not (tmp_path / "shards").exists()


def test_compress_shards_an_ivf_table_with_one_partition(vp, tmp_path, glove_small):
    path, words, x = glove_small
    single, shards = tmp_path / "one.vecpack", tmp_path / "shards"
    vp("compress", path, "-o", single, "-c", "ivf:lists=8/pq:m=4", "--seed", "3")
    vp("compress", path, "-o", shards, "-c", "ivf:lists=8/pq:m=4", "--seed", "3", "--shard-rows", "200")
    manifest = json.loads((shards / "manifest.json").read_text())
    assert len(manifest["shards"]) == 3 and manifest["partition_fingerprint"]
    vp("verify", shards)
    for nprobe in ("1", "3"):
        one = vp("search", single, "w7", "w420", "-k", "5", "--nprobe", nprobe).out
        assert vp("search", shards, "w7", "w420", "-k", "5", "--nprobe", nprobe).out == one
    # A recall target uses the curve the shards carry.
    assert vp("search", shards, "w7", "-k", "5", "--recall", "0.9").out


def test_add_delete_compact_vacuum_and_filtered_search(vp, glove_small, tmp_path):
    path, words, x = glove_small
    first = tmp_path / "first.txt"
    more = tmp_path / "more.txt"
    write_glove(first, words[:400], x[:400])
    write_glove(more, words[400:], x[400:])
    table = tmp_path / "t.vecpack"
    vp("compress", first, "-o", table, "--codec", "int8")
    added = vp("add", table, more)
    assert "added 100 rows: generation 1, 500 rows" in added.err
    clash = vp("add", table, more, check=False)
    assert clash.code == 1 and "key 'w400' is already in the table (row 400)" in clash.err
    assert vp("inspect", "--json", table).out.count('"generation": 1') == 1
    vp("delete", table, "w3", "w4")
    (tmp_path / "gone.txt").write_text("w5\n\nw6\n")
    vp("delete", table, "--from", tmp_path / "gone.txt")
    vp("delete", table, "--ids", "7")
    missing = vp("delete", table, "w3", check=False)
    assert missing.code == 7 and "key 'w3' is not in the table" in missing.err
    assert vp("get", table, "w4", check=False).code == 7
    info = vp("inspect", table).out
    assert "generation 4: 100 rows added, 5 deleted" in info and "suggestion  compact" in info
    assert vp("verify", table).code == 0

    found = vp("search", table, "w0", "-k", "20", "--json").out
    assert all(f'"w{i}"' not in found for i in (3, 4, 5, 6, 7))
    (tmp_path / "allow.txt").write_text("w10\n#11\nw450\n")
    allowed = vp("search", table, "w0", "-k", "5", "--allow", tmp_path / "allow.txt").out
    assert sorted(line.split()[1] for line in allowed.splitlines()[1:]) == ["w10", "w11", "w450"]
    denied = vp("search", table, "w0", "-k", "3", "--deny", tmp_path / "allow.txt").out
    assert "w10 " not in denied and "w450" not in denied
    (tmp_path / "bad.txt").write_text("w10\nnope\n")
    bad = vp("search", table, "w0", "--allow", tmp_path / "bad.txt", check=False)
    assert bad.code == 7 and "bad.txt:2: key 'nope' is not in the table" in bad.err

    (tmp_path / "t.vecpack.changes" / "delta-77.vecpack").write_text("left by a crashed writer")
    assert "removed 1 unused files" in vp("vacuum", table).err
    before = vp("search", table, "w0", "w450", "-k", "5").out, vp("get", table, "w499", "w8").out
    vp("compact", table)
    assert not (tmp_path / "t.vecpack.changes").exists()
    assert '"rows": 495' in vp("inspect", "--json", table).out
    # Compaction renumbers rows but changes no answer.
    assert (vp("search", table, "w0", "w450", "-k", "5").out, vp("get", table, "w499", "w8").out) == before


def test_search_filter_by_feature_table(vp, tmp_path):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    words = [("item:" if i % 3 == 0 else "user:") + str(i) for i in range(300)]
    src = tmp_path / "rows.txt"
    write_glove(src, words, x)
    table = tmp_path / "t.vecpack"
    vp("compress", src, "-o", table, "--codec", "hash:rows=64,k=2", "--row-tables", ":")
    for how in ("table=item", "table=0"):  # tables are numbered as they first appear: item:0 comes first
        found = vp("search", table, "user:1", "-k", "8", "--filter", how).out
        names = [line.split()[1] for line in found.splitlines()[1:]]
        assert len(names) == 8 and all(n.startswith("item:") for n in names), (how, found)
    missing = vp("search", table, "user:1", "--filter", "table=shop", check=False)
    assert missing.code == 7 and "no key is shop followed by a separator" in missing.err
    plain = tmp_path / "plain.vecpack"
    vp("compress", src, "-o", plain, "--codec", "int8")
    none = vp("search", plain, "user:1", "--filter", "table=1", check=False)
    assert none.code == 1 and "the table has no row tables" in none.err
