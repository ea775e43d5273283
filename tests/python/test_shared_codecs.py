"""Codecs whose rows share parameters (qr, hash) from Python: fitted to every row, rows decoded by
their position, saved and opened like any table, refused as shards."""
import numpy as np
import pytest

import vecpack


def clustered(n=1200, d=16, clusters=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centres[rng.integers(0, clusters, size=n)] + 0.15 * rng.normal(size=(n, d)).astype(np.float32)
    return x.astype(np.float32)


@pytest.mark.parametrize("spec", ["qr:m=30,op=add", "qr:m=30,op=mult,order=learned", "hash:rows=128,k=2",
                                  "hash:rows=128,k=2,weights=off"])
def test_shared_codec_tables_round_trip_and_search(tmp_path, spec):
    x = clustered()
    t = vecpack.compress(x, spec)
    info = t.info()
    assert info["codec"].startswith(spec.split(":")[0])
    # Bytes per row include the shared parameters: they are most of it.
    assert info["bytes"]["codec_parameters"] > info["bytes"]["codes"]
    path = tmp_path / "t.vecpack"
    t.save(path)
    u = vecpack.open(path)
    all_rows = u.vectors
    assert np.array_equal(all_rows, t.vectors)
    assert np.array_equal(u[len(x) - 1], all_rows[-1])
    assert np.array_equal(u[100:110], all_rows[100:110])
    # Search equals brute force over the decoded rows.
    q = clustered(5, seed=1)
    ids, _ = u.search(q, k=5)
    exact = vecpack.compress(all_rows, "f32")
    want, _ = exact.search(q, k=5)
    assert np.array_equal(ids, want)
    # The fit is better than the mean row.
    assert np.mean((all_rows - x) ** 2) < np.mean((x - x.mean(axis=0)) ** 2)


def test_learned_qr_order_beats_identity_on_scattered_clusters():
    x = clustered(4000, 16, 250, seed=5)
    identity = vecpack.compress(x, "qr:m=16,op=add").vectors
    learned = vecpack.compress(x, "qr:m=16,op=add,order=learned").vectors
    assert np.mean((learned - x) ** 2) < 0.8 * np.mean((identity - x) ** 2)


def test_shared_codec_tables_are_not_sharded(tmp_path):
    x = clustered(400)
    codec = vecpack.Codec("qr:m=20,op=add")
    codec.train(x)
    # A fit to some rows encodes no others: shards cannot share it ...
    with pytest.raises(vecpack.Error, match="fitted in place to the rows it was trained on"):
        vecpack.compress(x[:200], codec)
    # ... and a shard fitted on its own is refused by the manifest.
    vecpack.compress(x[:200], "qr:m=20,op=add").save(tmp_path / "part0.vecpack")
    with pytest.raises(vecpack.Error, match="position in one table"):
        vecpack.write_manifest(tmp_path, ["part0.vecpack"])


def test_shared_codec_errors_name_the_argument():
    with pytest.raises(vecpack.SpecError, match="k=5 is larger than rows=4"):
        vecpack.Codec("hash:rows=4,k=5")
    with pytest.raises(vecpack.Error, match="m=51 is larger than the 50 rows"):
        vecpack.compress(clustered(50), "qr:m=51")


def test_fit_subwords_answers_unknown_words_from_their_ngrams(tmp_path):
    # A word's vector is the mean of its syllables' vectors, so n-grams carry its meaning.
    rng = np.random.default_rng(3)
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze"]
    meaning = {s: rng.normal(size=8).astype(np.float32) for s in syllables}
    words = [a + b + c for a in syllables for b in syllables for c in syllables]
    rows = np.stack([(meaning[w[0:2]] + meaning[w[2:4]] + meaning[w[4:6]]) / 3 for w in words])
    held = set(words[3::7])
    kept = [w for w in words if w not in held]
    t = vecpack.compress(rows[[w not in held for w in words]], "f32", keys=kept)
    with pytest.raises(KeyError):
        t["kalomi" if "kalomi" in held else words[3]]
    fitted = t.fit_subwords(buckets=4096, minn=2, maxn=4)
    assert fitted.has_subwords
    predicted = np.stack([fitted[w] for w in sorted(held)])
    truth = np.stack([rows[words.index(w)] for w in sorted(held)])
    cos = np.sum(predicted * truth, axis=1) / (np.linalg.norm(predicted, axis=1) * np.linalg.norm(truth, axis=1))
    assert cos.mean() > 0.9
    path = tmp_path / "w.vecpack"
    fitted.compress("f16").save(path)
    assert np.allclose(vecpack.open(path)[sorted(held)[0]], predicted[0], atol=0.02)
    with pytest.raises(vecpack.Error, match="no keys"):
        vecpack.compress(rows, "f32").fit_subwords()
    # keep_rows: the rows from 300 on are dropped after the fit; those words come from n-grams.
    small = t.fit_subwords(buckets=4096, minn=2, maxn=4, keep_rows=300)
    assert len(small) == 300 and kept[299] in small and kept[500] not in small
    v, want = small[kept[500]], rows[words.index(kept[500])]
    assert v @ want / (np.linalg.norm(v) * np.linalg.norm(want)) > 0.9


def syllable_table():
    rng = np.random.default_rng(6)
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to"]
    meaning = {s: rng.normal(size=8) for s in syllables}
    words = [a + b + c for a in syllables for b in syllables for c in syllables if a + b + c != "kalomi"]
    x = np.array([(meaning[w[:2]] + meaning[w[2:4]] + meaning[w[4:]]) / 3 for w in words], dtype=np.float32)
    return meaning, words, x


def test_subword_codec_answers_words_the_table_lacks(tmp_path):
    meaning, words, x = syllable_table()
    t = vecpack.compress(x, "subword:rows=2048,minn=2,maxn=4,keep=40", keys=words)
    assert t.info()["code_size"] == 0
    assert np.array_equal(t[:40], x[:40].astype(np.float16).astype(np.float32))  # kept rows: whole, in f16
    want = (meaning["ka"] + meaning["lo"] + meaning["mi"]) / 3
    got = t["kalomi"]
    assert got @ want / (np.linalg.norm(got) * np.linalg.norm(want)) > 0.9
    t.save(tmp_path / "s.vecpack")
    assert np.array_equal(vecpack.open(tmp_path / "s.vecpack")["kalomi"], got)
    with pytest.raises(vecpack.Error, match="the table has no keys"):
        vecpack.compress(x, "subword:rows=64")


def test_counts_are_kept_and_rank_rows_for_mixdim(tmp_path):
    x = clustered(600, 8)
    counts = np.arange(600, 0, -1, dtype=np.uint64)[np.random.default_rng(2).permutation(600)]
    with pytest.raises(vecpack.Error, match="frequencies missing.*order=file"):
        vecpack.compress(x, "mixdim:budget=16")
    t = vecpack.compress(x, "mixdim:budget=16", counts=counts)
    assert np.array_equal(t.counts, counts)
    t.save(tmp_path / "m.vecpack")
    u = vecpack.open(tmp_path / "m.vecpack")
    view = u.counts
    assert view.dtype == np.uint64 and not view.flags.writeable and np.array_equal(view, counts)
    assert vecpack.compress(x, "f16").counts is None
    assert np.array_equal(vecpack.compress(x, "f16").with_counts(counts).counts, counts)
    with pytest.raises(vecpack.Error, match="3 counts for a table of 600 rows"):
        vecpack.compress(x, "f16").with_counts([1, 2, 3])


def test_row_tables_hash_each_table_apart():
    x = clustered(400, 8)
    tables = np.repeat([0, 1], 200).astype(np.uint32)
    one = vecpack.compress(x, "hash:rows=64,weights=off")
    two = vecpack.compress(x, "hash:rows=64,weights=off", row_tables=tables)
    zero = vecpack.compress(x, "hash:rows=64,weights=off", row_tables=np.zeros(400, np.uint32))
    assert np.array_equal(zero.vectors, one.vectors)
    assert not np.array_equal(two.vectors, one.vectors)
    assert "row_tables" in next(c for c in vecpack.codecs() if c["name"] == "hash")["capabilities"]
    with pytest.raises(vecpack.Error, match="takes no feature table per row"):
        vecpack.compress(x, "int8", row_tables=tables)
