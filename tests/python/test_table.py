"""Table: opening, indexing, keys, search, gensim-style queries, info and repr."""
import json
import re
from collections.abc import Sequence

import numpy as np
import pytest

import vecpack
from conftest import run_cli


def test_open_and_index(glove_file, glove):
    t = vecpack.open(glove_file)
    assert (len(t), t.dim, t.spec, t.metric) == (15000, 100, "f32", "cos")
    assert t.has_keys and not t.has_subwords and t.path == str(glove_file)
    assert "king" in t and "no-such-word" not in t and 5 not in t

    king = t["king"]
    assert king.dtype == np.float32 and king.shape == (100,)
    assert np.array_equal(king, glove["king"])
    row = t.find("king")
    assert np.array_equal(t[row], king) and np.array_equal(t[np.int64(row)], king)
    assert t.find("no-such-word") is None

    both = t[["king", "queen"]]
    assert both.shape == (2, 100) and np.array_equal(both[1], t["queen"])
    assert np.array_equal(t[3:7], np.stack([t[i] for i in range(3, 7)]))
    assert np.array_equal(t[10:2:-3], np.stack([t[i] for i in (10, 7, 4)]))
    assert np.array_equal(t[[1, -1]], np.stack([t[1], t[len(t) - 1]]))
    assert np.array_equal(t[np.array([4, 2])], np.stack([t[4], t[2]]))
    assert t[5:5].shape == (0, 100)
    with pytest.raises(IndexError):
        t[len(t)]
    with pytest.raises(TypeError):
        t[1.5]


def test_keys_are_a_lazy_sequence(glove_file):
    t = vecpack.open(glove_file)
    keys = t.keys
    assert isinstance(keys, Sequence) and len(keys) == len(t)
    assert keys[0] == "the" and keys[-1] == keys[len(t) - 1]
    assert keys[:3] == ["the", ",", "."]
    assert "king" in keys and keys.index("king") == t.find("king") and keys[keys.index("king")] == "king"
    assert list(keys)[100:103] == keys[100:103]
    with pytest.raises(ValueError):
        keys.index("no-such-word")
    unkeyed = vecpack.compress(np.ones((3, 4)), "f32")
    assert unkeyed.keys is None and not unkeyed.has_keys


def test_repr(glove_file, glove):
    t = vecpack.open(glove_file)
    assert re.fullmatch(r"<vecpack\.Table 15000 x 100, f32, cos, keys, 6\.\d MB, 'glove\.f32\.vecpack'>", repr(t)), repr(t)
    assert re.fullmatch(r"<vecpack\.Table 15000 x 100, int8, cos, keys, \d\.\d MB>", repr(glove.compress("int8")))
    assert repr(vecpack.Codec("int8")) == "<vecpack.Codec 'int8', untrained>"


def test_info_is_what_inspect_prints(glove_int8_file):
    t = vecpack.open(glove_int8_file)
    info = t.info()
    assert info == json.loads(run_cli("inspect", "--json", glove_int8_file))
    assert info["codec"] == "int8" and info["rows"] == 15000 and info["code_size"] == 100


def test_search_shapes_and_metrics(glove):
    q = glove["king"]
    ids, scores = glove.search(q, k=5)
    assert ids.shape == (5,) and scores.shape == (5,) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids[0] == glove.find("king") and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(scores) <= 0)

    batch_ids, batch_scores = glove.search(glove[["king", "paris", "red"]].astype(np.float64), k=4)
    assert batch_ids.shape == (3, 4) and batch_ids[0, 0] == ids[0]
    assert np.array_equal(batch_scores[0], scores[:4])

    l2_ids, l2 = glove.search(q, k=3, metric="l2")
    assert l2_ids[0] == ids[0] and l2[0] == pytest.approx(0.0, abs=1e-3) and np.all(np.diff(l2) >= 0)

    tiny = vecpack.compress(np.eye(3), "f32")
    few_ids, _ = tiny.search([1.0, 0.0, 0.0], k=5)
    assert list(few_ids[3:]) == [-1, -1]
    with pytest.raises(ValueError, match="dimension"):
        glove.search(np.ones(7), k=3)
    with pytest.raises(ValueError):
        glove.search(q, k=0)
    with pytest.raises(vecpack.SpecError):
        glove.search(q, metric="manhattan")
    with pytest.raises(vecpack.Error, match="rerank"):
        glove.search(q, rerank=50)


def write_glove(path, words, vectors):
    with open(path, "w", encoding="utf-8") as f:
        for word, vector in zip(words, vectors):
            f.write(word + " " + " ".join(repr(float(x)) for x in vector) + "\n")


def neighbours_from_cli(output):
    rows = [[n["row"] for n in q["neighbors"]] for q in json.loads(output)]
    scores = [[n["score"] for n in q["neighbors"]] for q in json.loads(output)]
    return np.array(rows), np.array(scores, dtype=np.float32)


def test_search_matches_the_cli(glove_int8_file, tmp_path):
    t = vecpack.open(glove_int8_file)
    rng = np.random.default_rng(8)
    queries = np.concatenate([t[["king", "paris", "computer"]], rng.normal(size=(20, 100)).astype(np.float32)])
    write_glove(tmp_path / "queries.txt", [f"q{i}" for i in range(len(queries))], queries)

    cli_ids, cli_scores = neighbours_from_cli(
        run_cli("search", glove_int8_file, "--queries", tmp_path / "queries.txt", "-k", "10", "--include-self", "--json"))
    ids, scores = t.search(queries, k=10)
    assert np.array_equal(ids, cli_ids)
    assert np.array_equal(scores, cli_scores)

    cli_ids, cli_scores = neighbours_from_cli(
        run_cli("search", glove_int8_file, "king", "paris", "-k", "10", "--include-self", "--json", "--metric", "ip"))
    ids, scores = t.search(t[["king", "paris"]], k=10, metric="ip")
    assert np.array_equal(ids, cli_ids) and np.array_equal(scores, cli_scores)


def reference_most_similar(table, positive, negative, topn):
    """gensim's most_similar in plain numpy over the decoded rows."""
    rows = table.vectors.astype(np.float64)
    unit_rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    unit = lambda v: v / np.linalg.norm(v)
    terms = [unit(table[w].astype(np.float64)) for w in positive] + [-unit(table[w].astype(np.float64)) for w in negative]
    cosines = unit_rows @ unit(np.mean(terms, axis=0))
    skipped = {table.find(w) for w in positive + negative}
    order = [int(i) for i in np.argsort(-cosines, kind="stable") if int(i) not in skipped][:topn]
    return [table.keys[i] for i in order], cosines[order]


@pytest.mark.parametrize("positive,negative", [(["king"], []), (["king", "woman"], ["man"]), (["paris"], ["france"])])
def test_most_similar_matches_numpy(glove, positive, negative):
    found = glove.most_similar(positive=positive, negative=negative, topn=10)
    words, cosines = reference_most_similar(glove, positive, negative, 10)
    assert [w for w, _ in found] == words
    assert np.allclose([s for _, s in found], cosines, atol=1e-5)
    assert not set(positive + negative) & {w for w, _ in found}


def test_most_similar_forms(glove):
    by_word = glove.most_similar("king", topn=5)
    assert by_word == glove.most_similar(positive=["king"], topn=5)
    assert all(isinstance(w, str) and isinstance(s, float) for w, s in by_word)
    # A vector is not excluded from the answer: the word itself comes first.
    assert glove.most_similar(positive=[glove["king"]], topn=1)[0][0] == "king"
    everything = glove.most_similar("king", topn=None)
    assert everything.shape == (15000,)
    assert all(everything[glove.find(w)] == pytest.approx(s, abs=1e-6) for w, s in by_word)
    assert glove.most_similar("king", topn=0) == []
    with pytest.raises(ValueError):
        glove.most_similar()
    with pytest.raises(KeyError):
        glove.most_similar("no-such-word")


def test_similarity(glove):
    a, b = glove["king"].astype(np.float64), glove["queen"].astype(np.float64)
    assert glove.similarity("king", "queen") == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-9)
    assert glove.similarity("king", "king") == pytest.approx(1.0)


def test_compress_from_numpy(clustered, tmp_path):
    x, keys = clustered
    f32 = vecpack.compress(x, "f32", keys=keys, metric="ip")
    assert (len(f32), f32.dim, f32.spec, f32.metric) == (600, 24, "f32", "ip")
    assert np.array_equal(f32.vectors, x.astype(np.float32)) and f32["k7"].tolist() == x[7].astype(np.float32).tolist()
    # Non-contiguous and integer inputs are converted too.
    assert np.array_equal(vecpack.compress(x[:, ::2], "f32").vectors, x[:, ::2].astype(np.float32))
    assert vecpack.compress(np.arange(6).reshape(2, 3), "f16").spec == "f16"

    small = vecpack.compress(x, "int8", keys=keys, train_size=0, seed=7)
    assert small.spec == "int8" and small.codes.shape == (600, 24) and small.codes.dtype == np.uint8
    assert np.abs(small.vectors - x).max() < 0.05
    small.save(tmp_path / "s.vecpack")
    again = vecpack.open(tmp_path / "s.vecpack")
    assert np.array_equal(again.codes, small.codes) and list(again.keys) == keys

    nan = x.copy()
    nan[5, 3] = np.nan
    for spec in ("f32", "int8"):
        with pytest.raises(vecpack.Error, match="row 5"):
            vecpack.compress(nan, spec)
    with pytest.raises(vecpack.Error, match="keys"):
        vecpack.compress(x, "f32", keys=keys[:10])
    with pytest.raises(ValueError, match="2-D"):
        vecpack.compress(x[0], "f32")
    with pytest.raises(vecpack.SpecError):
        vecpack.compress(x, "int8", rerank="int9")
    empty = vecpack.compress(np.zeros((0, 4)), "f32")
    assert (len(empty), empty.dim, empty.vectors.shape) == (0, 4, (0, 4))
    with pytest.raises(vecpack.Error, match="empty"):
        vecpack.compress(np.zeros((0, 4)), "int8")


def test_table_compress_and_save(glove, tmp_path):
    half = glove.compress("f16", train_size=0, threads=2)
    assert half.spec == "f16" and half.path is None and half.info()["code_size"] == 200
    half.save(tmp_path / "h.vecpack")
    opened = vecpack.open(str(tmp_path / "h.vecpack"))
    assert opened.spec == "f16" and np.array_equal(opened.vectors, half.vectors)
    assert np.array_equal(opened.codes, half.codes)
    assert np.abs(opened.vectors - glove.vectors).max() < 0.01


def test_codecs_and_formats_listings():
    codecs = {c["name"]: c for c in vecpack.codecs()}
    assert {"f32", "f16", "int8"} <= set(codecs)
    for c in codecs.values():
        assert set(c) >= {"name", "kind", "description", "capabilities", "params"}
        assert all({"name", "default", "help"} <= set(p) for p in c["params"])
    assert "needs_training" in codecs["int8"]["capabilities"]
    formats = {f["name"]: f for f in vecpack.formats()}
    assert {"glove", "word2vec", "vecpack"} <= set(formats)
    assert formats["vecpack"]["can_write"] and ".vecpack" in formats["vecpack"]["extensions"]


def test_rerank_rows_rescore_a_shortlist(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    q = rng.normal(size=(20, 16)).astype(np.float32)
    exact = vecpack.compress(x, "f32")
    truth, _ = exact.search(q, k=10)
    lossy = vecpack.compress(x, "bf16", rerank="f32")
    lossy.save(tmp_path / "r.vecpack")
    t = vecpack.open(tmp_path / "r.vecpack")
    assert t.info()["rerank"]["codec"] == "f32"
    ids, _ = t.search(q, k=10, rerank=len(x))  # every row rescored: the exact answer
    assert np.array_equal(ids, truth)
    assert t.compress("int8", rerank="f16").info()["rerank"]["codec"] == "f16"


def test_ivf_partition_nprobe_and_file(glove, tmp_path):
    """An ivf stage: nprobe lists per query, every list = the flat result; the file keeps the lists."""
    x = glove.vectors
    flat = vecpack.compress(x, "pq:m=25", keys=list(glove.keys), metric="cos")
    ivf = vecpack.compress(x, "ivf:lists=64/pq:m=25", keys=list(glove.keys), metric="cos", rerank="f32")
    assert ivf.spec == "ivf:lists=64/pq:m=25,nbits=8"
    q = x[:50]
    ids_all, scores_all = ivf.search(q, k=10)
    ids_flat, scores_flat = flat.search(q, k=10)
    assert np.array_equal(ids_all, ids_flat)
    np.testing.assert_allclose(scores_all, scores_flat, rtol=1e-5)
    # A few lists, then exact rescoring: each word finds itself first, under its own row id.
    ids, scores = ivf.search(q, k=10, nprobe=8, rerank=100)
    assert np.array_equal(ids[:, 0], np.arange(50))
    path = tmp_path / "ivf.vecpack"
    ivf.save(path)
    opened = vecpack.open(path)
    assert opened.spec == ivf.spec and opened["king"].tolist() == ivf["king"].tolist()
    again, _ = opened.search(q, k=10, nprobe=8, rerank=100)
    assert np.array_equal(again, ids)
    with pytest.raises(vecpack.Error, match="nprobe=65 exceeds"):
        ivf.search(q, k=10, nprobe=65)
    # The CLI lists the same neighbours (rerank f32: exact cosines of the probed lists' rows).
    out = run_cli("search", path, "king", "--nprobe", "8", "--rerank", "100", "-k", "3", "--json")
    found = [n["key"] for n in json.loads(out)[0]["neighbors"]]
    ids, _ = ivf.search(ivf["king"], k=4, nprobe=8, rerank=100)
    assert found == [ivf.keys[i] for i in ids[1:]]
    # A recall target instead of nprobe: the table measured its recall by nprobe when compressed,
    # keeps it in the file, and the CLI takes the same target.
    curve = opened.recall_curve()
    assert curve["k"] == 10 and curve["rerank"] == 100
    assert [p[0] for p in curve["points"]] == [1, 2, 4, 8, 16, 32, 64]
    assert curve["points"] == ivf.recall_curve()["points"]
    target = 0.9
    nprobe = next((p for p, r in curve["points"] if r >= target), 64)
    by_recall, _ = opened.search(q, k=10, recall=target)
    by_nprobe, _ = opened.search(q, k=10, nprobe=nprobe, rerank=100)
    assert np.array_equal(by_recall, by_nprobe)
    out = run_cli("search", path, "king", "--recall", str(target), "-k", "3", "--json")
    found = [n["key"] for n in json.loads(out)[0]["neighbors"]]
    ids, _ = ivf.search(ivf["king"], k=4, nprobe=nprobe, rerank=100)
    assert found == [ivf.keys[i] for i in ids[1:]]
    assert "recall@10" in run_cli("inspect", path)
    with pytest.raises(vecpack.Error, match="not both"):
        ivf.search(q, k=10, nprobe=4, recall=0.9)
    assert flat.recall_curve()["points"] == []


def test_gensim_keyed_vectors_round_trip_exactly():
    gensim_models = pytest.importorskip("gensim.models", reason="from_gensim/to_gensim need gensim: pip install gensim")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    keys = [f"w{i}" for i in range(300)]
    kv = gensim_models.KeyedVectors(12)
    kv.add_vectors(keys, x)
    for key, count in zip(keys, range(1000, 700, -1)):
        kv.set_vecattr(key, "count", count)
    t = vecpack.from_gensim(kv)
    assert list(t.keys) == keys and t.metric == "cos"
    assert np.array_equal(t.vectors, x)  # bit for bit
    assert list(t.counts) == list(range(1000, 700, -1))
    back = t.to_gensim()
    assert back.index_to_key == keys
    assert np.array_equal(back.vectors, x)
    assert [back.get_vecattr(k, "count") for k in keys[:3]] == [1000, 999, 998]
    # gensim and vecpack agree on the neighbours of the same rows.
    assert [w for w, _ in t.most_similar("w5", topn=5)] == [w for w, _ in kv.most_similar("w5", topn=5)]
    # A compressed table comes out as its decoded rows; one without keys, with row numbers.
    small = t.compress("int8")
    assert np.array_equal(small.to_gensim().vectors, small.vectors)
    unkeyed = vecpack.compress(x, "f32").to_gensim()
    assert unkeyed.index_to_key[:2] == ["0", "1"] and np.array_equal(unkeyed.vectors, x)
    # Keys that are not unique as text are refused.
    clash = gensim_models.KeyedVectors(12)
    clash.add_vectors([1, "1"], x[:2])
    with pytest.raises(ValueError, match="same text"):
        vecpack.from_gensim(clash)


def test_quantize_embeddings_speaks_sentence_transformers_precisions():
    x = np.array([[0.5, -1.0, 0.0, 2.0, 0.1, -0.1, 3.0, -3.0],
                  [1.0, 1.0, -1.0, -2.0, 0.2, 0.0, 0.0, 1.0]], dtype=np.float32)
    # binary: bit set above 0, most significant first; int8 is the byte minus 128.
    assert vecpack.quantize_embeddings(x, "ubinary").tolist() == [[0b10011010], [0b11001001]]
    assert vecpack.quantize_embeddings(x, "binary").tolist() == [[0b10011010 - 128], [0b11001001 - 128]]
    assert vecpack.quantize_embeddings(x[0], "ubinary").tolist() == [0b10011010]  # one row, 1-D
    # uint8 / int8: 255 steps between each dimension's minimum and maximum.
    ranges = np.array([[-1.0] * 8, [1.0] * 8], dtype=np.float32)
    u = vecpack.quantize_embeddings(x, "uint8", ranges=ranges)
    assert u.dtype == np.uint8 and u[0, :3].tolist() == [191, 0, 127]
    assert u[0, 3] == 255 and u[0, 7] == 0  # outside the ranges: clipped
    i = vecpack.quantize_embeddings(x, "int8", calibration_embeddings=np.vstack([ranges, x[:, :8] * 0]))
    assert i.dtype == np.int8 and i[0, :3].tolist() == [63, -128, 0]  # truncated toward 0, as numpy casts
    own = vecpack.quantize_embeddings(x, "uint8")  # ranges from the rows themselves
    assert own.min(axis=0).tolist() == [0] * 8
    assert vecpack.quantize_embeddings(x, "float32").dtype == np.float32
    with pytest.raises(ValueError, match="not one of"):
        vecpack.quantize_embeddings(x, "int4")
    with pytest.raises(ValueError, match="not int8 or uint8"):
        vecpack.quantize_embeddings(u, "binary")
    with pytest.raises(ValueError, match="ranges must be 2 x 8"):
        vecpack.quantize_embeddings(x, "int8", ranges=ranges[:, :4])


def test_quantize_embeddings_bytes_equal_sentence_transformers():
    st = pytest.importorskip("sentence_transformers.quantization",
                             reason="comparing with sentence-transformers needs it: pip install sentence-transformers")
    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 64)).astype(np.float32)
    calibration = rng.normal(size=(1000, 64)).astype(np.float32) * 4  # wide: every value inside the ranges
    for precision in ("float32", "int8", "uint8", "binary", "ubinary"):
        ours = vecpack.quantize_embeddings(x, precision, calibration_embeddings=calibration)
        theirs = st.quantize_embeddings(x, precision, calibration_embeddings=calibration)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), precision


def test_vectors_of_a_compressed_table_decode_once():
    x = np.random.default_rng(4).normal(size=(500, 16)).astype(np.float32)
    small = vecpack.compress(x, "int8")
    first = small.vectors
    assert small.vectors is first and not first.flags.writeable  # kept, not decoded again
    fresh = small.decode()
    assert fresh is not first and fresh.flags.writeable and np.array_equal(fresh, first)
    assert np.array_equal(small[10:20], first[10:20])
    with pytest.raises(ValueError):
        first[0, 0] = 1.0
    exact = vecpack.compress(x, "f32")
    assert np.array_equal(exact.decode(), exact.vectors) and exact.decode().flags.writeable
