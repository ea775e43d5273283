"""Converters against each other and against the tools users bring files from (gensim)."""
import gzip
import json

import numpy as np
import pytest

from conftest import DATA

PARSE = 5
SAMPLE = DATA / "glove.6B.100d.15k.txt.gz"


def sample_rows(limit):
    words, rows = [], []
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            words.append(parts[0])
            rows.append([float(x) for x in parts[1:]])
            if len(words) == limit:
                break
    return words, np.array(rows, dtype=np.float32)


@pytest.fixture
def base(vp, tmp_path):
    """300 rows of the sample as .vecpack f32, and their word2vec text as written by vecpack."""
    src = tmp_path / "base.vecpack"
    vp("-q", "convert", SAMPLE, src, "--limit", "300")
    text = tmp_path / "base.w2v.txt"
    vp("-q", "convert", src, text, "--to", "word2vec")
    return src, text.read_bytes()


# Each chain ends in .vecpack and must give back the same keys and the same float32 bits.
CHAINS = [
    [("a.txt", "word2vec")],
    [("a.bin", "word2vec-bin")],
    [("a.glove.txt", "glove")],
    [("a.vec", "fasttext-vec")],
    [("a.h5", "hdf5")],
    [("a.txt.gz", "word2vec"), ("b.bin", "word2vec-bin"), ("c.txt", "glove"), ("d.h5", "hdf5")],
]


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: "->".join(f for _, f in c))
def test_round_trips_are_bit_exact(vp, tmp_path, base, chain):
    src, expected = base
    current = src
    for name, fmt in chain:
        out = tmp_path / name
        vp("-q", "convert", current, out, "--to", fmt)
        current = out
    final = tmp_path / "final.vecpack"
    vp("-q", "convert", current, final, "--from", chain[-1][1])
    vp("-q", "convert", final, tmp_path / "final.txt", "--to", "word2vec")
    assert (tmp_path / "final.txt").read_bytes() == expected


@pytest.mark.parametrize("ext", [".npy", ".fvecs"])
def test_unkeyed_round_trips_are_bit_exact(vp, tmp_path, base, ext):
    src, _ = base
    words, rows = sample_rows(300)
    out = tmp_path / ("a" + ext)
    vp("-q", "convert", src, out)
    back = tmp_path / "back.vecpack"
    vp("-q", "convert", out, back)
    vp("-q", "convert", back, tmp_path / "back.npy")
    got = np.load(tmp_path / "back.npy")
    assert got.dtype == np.float32 and got.shape == rows.shape
    assert got.tobytes() == rows.tobytes()


def test_lenient_accepts_a_header_count_that_disagrees(vp, tmp_path):
    p = tmp_path / "more.txt"
    p.write_text("2 2\na 1 2\nb 3 4\nc 5 6\n")
    r = vp("convert", "--from", "word2vec", p, tmp_path / "o.vecpack", check=False)
    assert r.code == PARSE and "header says 2 rows, file has 3 (accept with --lenient)" in r.err
    r = vp("convert", "--from", "word2vec", "--lenient", p, tmp_path / "o.vecpack")
    assert "warning: header says 2 rows, file has 3" in r.err
    assert json.loads(vp("inspect", "--json", tmp_path / "o.vecpack").out)["rows"] == 3


def test_unicode_errors(vp, tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"caf\xe9 1 2\nok 3 4\n")  # Latin-1 inside a UTF-8 file
    r = vp("convert", "--from", "glove", p, tmp_path / "o.vecpack", check=False)
    assert r.code == PARSE and "bad.txt:1:4" in r.err and "not valid UTF-8" in r.err
    vp("-q", "convert", "--from", "glove", "--unicode-errors", "replace", p, tmp_path / "r.vecpack")
    assert "caf\ufffd" in vp("get", tmp_path / "r.vecpack", "caf\ufffd").out
    vp("-q", "convert", "--from", "glove", "--unicode-errors", "ignore", p, tmp_path / "i.vecpack")
    assert vp("get", tmp_path / "i.vecpack", "caf").out.split() == ["caf", "1", "2"]
    r = vp("convert", "--unicode-errors", "maybe", p, tmp_path / "o.vecpack", check=False)
    assert r.code == 2


def test_duplicate_keys_keep_the_first_and_warn_once(vp, tmp_path):
    p = tmp_path / "dup.txt"
    p.write_text("a 1 2\nb 3 4\na 5 6\nb 7 8\na 9 9\n")
    r = vp("convert", "--from", "glove", p, tmp_path / "o.vecpack")
    assert r.err.count("warning") == 1 and "3 duplicate keys skipped (first kept)" in r.err
    assert vp("get", tmp_path / "o.vecpack", "a").out.split() == ["a", "1", "2"]


def test_bom_and_crlf_are_tolerated(vp, tmp_path):
    p = tmp_path / "win.txt"
    p.write_bytes(b"\xef\xbb\xbf2 2\r\na 1 2\r\nb 3 4\r\n")
    vp("-q", "convert", p, tmp_path / "o.vecpack")
    assert vp("get", tmp_path / "o.vecpack", "a", "b").out.split() == ["a", "1", "2", "b", "3", "4"]


def test_memory_bombs_are_refused_before_allocation(vp, tmp_path):
    bomb = tmp_path / "bomb.txt.gz"  # 50 bytes declaring 10^12 rows of 300 floats
    bomb.write_bytes(gzip.compress(b"1000000000000 300\n" + b"a" + b" 0" * 300 + b"\n"))
    r = vp("convert", bomb, tmp_path / "o.vecpack", check=False)
    assert r.code == 9, r.err
    assert "the table would need 1.1 PiB (the header's 1000000000000 rows x 300 floats)" in r.err
    assert "(80% of the memory available); raise it with --max-memory" in r.err
    assert r.err.count("\n") == 1 and not (tmp_path / "o.vecpack").exists()
    # A gzip file that expands past --max-memory, and the same file under a limit it fits.
    rows = b"".join(b"w%d 0 0 0 0\n" % i for i in range(100000))
    grows = tmp_path / "grows.txt.gz"
    grows.write_bytes(gzip.compress(rows))
    r = vp("convert", "--from", "glove", "--max-memory", "1M", grows, tmp_path / "o.vecpack", check=False)
    assert r.code == 9 and "rows read so far), more than the memory limit of 1.0 MiB" in r.err, r.err
    vp("-q", "convert", "--from", "glove", "--max-memory", "64M", grows, tmp_path / "o.vecpack")
    assert json.loads(vp("inspect", "--json", tmp_path / "o.vecpack").out)["rows"] == 100000
    r = vp("convert", "--max-memory", "lots", grows, tmp_path / "o.vecpack", check=False)
    assert r.code == 6 and "memory size 'lots' is not a size" in r.err


# One malformed file per quirk: each must fail with one clear message naming the file and the
# line (text) or byte offset (binary), and a non-zero exit code.
BAD_INPUTS = [
    ("empty.txt", b"", "word2vec", "the file is empty"),
    ("header-only.txt", b"3 2\n", "word2vec", "header says 3 rows, file has 0"),
    ("dim0.txt", b"1 0\na\n", "word2vec", "dimension must be positive"),
    ("negative.txt", b"-1 2\n", "word2vec", "row count is negative"),
    ("short-row.txt", b"2 3\na 1 2 3\nb 1 2\n", "word2vec", ":3:"),
    ("long-row.txt", b"2 3\na 1 2 3\nb 1 2 3 4\n", "word2vec", "expected 3 values after the word, found 4"),
    ("not-float.txt", b"1 2\na 1 x2\n", "word2vec", "'x2' is not a number"),
    ("glove-ragged.txt", b"a 1 2 3\nb 1 2\n", "glove", ":2:"),
    ("glove-empty.txt", b"", "glove", "no rows"),
    ("bin-cut.bin", b"1 4\na \x00\x00\x80\x3f", "word2vec-bin", "truncated"),
    ("ft-magic.ftz", b"\x00\x01\x02\x03" + b"\x00" * 60, "fasttext", "magic"),
    ("npy-magic.npy", b"\x93NUMPX" + b"\x00" * 60, "npy", "magic"),
    ("fvecs-cut.fvecs", b"\x04\x00\x00\x00" + b"\x00" * 8, "fvecs", "truncated"),
]


@pytest.mark.parametrize("name,content,fmt,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gives_one_clear_message(vp, tmp_path, name, content, fmt, message):
    p = tmp_path / name
    p.write_bytes(content)
    r = vp("convert", "--from", fmt, p, tmp_path / "o.vecpack", check=False)
    assert r.code != 0
    assert name in r.err and message in r.err, r.err
    assert r.err.count("\n") == 1, r.err  # one line, no stack of messages
    assert not (tmp_path / "o.vecpack").exists()


# ------------------------------------------------------------------------------- gensim

def gensim_keyed_vectors():
    models = pytest.importorskip("gensim.models", reason="gensim is not installed (pip install gensim)")
    return models.KeyedVectors


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_reads_files_gensim_writes(vp, tmp_path, binary):
    KeyedVectors = gensim_keyed_vectors()
    words, rows = sample_rows(500)
    words = words[:-2] + ["naïve", "日本"]  # non-ASCII keys survive both ways
    kv = KeyedVectors(vector_size=rows.shape[1])
    kv.add_vectors(words, rows)
    path = tmp_path / ("g.bin" if binary else "g.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    out = tmp_path / "g.vecpack"
    vp("-q", "convert", path, out)
    vp("-q", "convert", out, tmp_path / "g.npy")
    assert np.load(tmp_path / "g.npy").tobytes() == rows.tobytes()
    got = vp("get", "--json", out, "naïve", "日本", words[0]).out
    vectors = json.loads(got)
    assert np.array_equal(np.array(vectors["日本"], dtype=np.float32), rows[-1])
    assert np.array_equal(np.array(vectors[words[0]], dtype=np.float32), rows[0])


@pytest.mark.parametrize("fmt,binary", [("word2vec", False), ("word2vec-bin", True), ("fasttext-vec", False)])
def test_gensim_reads_files_vecpack_writes(vp, tmp_path, fmt, binary):
    KeyedVectors = gensim_keyed_vectors()
    words, rows = sample_rows(500)
    src = tmp_path / "s.vecpack"
    vp("-q", "convert", SAMPLE, src, "--limit", "500")
    out = tmp_path / "out.w2v"
    vp("-q", "convert", src, out, "--to", fmt)
    kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
    assert list(kv.index_to_key) == words
    assert kv.vectors.dtype == np.float32 and kv.vectors.tobytes() == rows.tobytes()


def test_gensim_reads_glove_files_vecpack_writes(vp, tmp_path):
    KeyedVectors = gensim_keyed_vectors()
    words, rows = sample_rows(200)
    src = tmp_path / "s.vecpack"
    vp("-q", "convert", SAMPLE, src, "--limit", "200")
    out = tmp_path / "out.glove.txt"
    vp("-q", "convert", src, out, "--to", "glove")
    kv = KeyedVectors.load_word2vec_format(str(out), binary=False, no_header=True)
    assert list(kv.index_to_key) == words and kv.vectors.tobytes() == rows.tobytes()
