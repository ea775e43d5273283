"""Differential checks of every reader and writer: seeded random tables written in each format
are read back by vecpack and by an independent reader (gensim, numpy, h5py, plain Python), and
files written by numpy and h5py are read by vecpack. Keys and values must agree bit for bit, so
a reader that silently accepts garbage (or a writer that rounds) fails here, not only one that
crashes."""
import gzip
import struct

import numpy as np
import pytest

import vecpack

SEEDS = range(12)

# Characters keys are drawn from: ASCII, Latin-1, CJK, combining marks, emoji beyond the BMP,
# and punctuation that looks like syntax in one format or another.
KEY_ALPHABET = list("abcxyzKQ019_-.,:;'\"#[](){}<>/\\|!?*&%$@^~`+=") + [
    "\u00e9", "\u00df", "\u00a0", "\u4e2d", "\u6587", "\u0301", "\u05d0", "\U0001f600", "\U0001d11e",
]


def random_keys(rng, n, blanks):
    keys, seen = [], set()
    while len(keys) < n:
        size = int(rng.integers(1, 12))
        key = "".join(KEY_ALPHABET[i] for i in rng.integers(0, len(KEY_ALPHABET), size))
        if blanks and size > 2 and rng.random() < 0.2:
            key = key[:1] + " " + key[1:]  # GloVe 840B has words with inner spaces
        if key.strip() != key or key in seen or "\u00a0" in key[:1] + key[-1:]:
            continue
        seen.add(key)
        keys.append(key)
    return keys


def random_values(rng, n, d):
    """f32 values of every kind that must survive text: normal, subnormal, signed zeros, the
    extremes, values whose shortest text is long, and exact integers."""
    kinds = rng.integers(0, 6, (n, d))
    out = rng.standard_normal((n, d)).astype(np.float32)
    bits = rng.integers(1, 1 << 23, (n, d), dtype=np.uint32) | (rng.integers(0, 2, (n, d), dtype=np.uint32) << 31)
    out = np.where(kinds == 1, bits.view(np.float32), out)  # subnormal
    out = np.where(kinds == 2, np.float32(-0.0) if rng.random() < 0.5 else np.float32(0.0), out)
    extremes = np.array([np.finfo(np.float32).max, -np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1 / 3],
                        np.float32)
    out = np.where(kinds == 3, extremes[rng.integers(0, 4, (n, d))], out)
    out = np.where(kinds == 4, rng.integers(-1000, 1000, (n, d)).astype(np.float32), out)
    return np.ascontiguousarray(out, dtype=np.float32)


def random_table(seed, blanks=False):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 60)), int(rng.integers(1, 40))
    return random_keys(rng, n, blanks), random_values(rng, n, d)


def same_bits(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def read_back(path, fmt=None):
    t = vecpack.read(path, format=fmt)
    return (list(t.keys) if t.has_keys else None), t.decode()


# ------------------------------------------------------------------ vecpack writes, others read

def parse_text(path, header, d):
    """A plain-Python reader of word2vec text / GloVe: the key is everything before the last d
    fields (GloVe has no header: like gensim's no_header, the reader is told d)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    lines = lines[:-1]
    if header:
        n, header_d = map(int, lines[0].split(" "))
        lines = lines[1:]
        assert len(lines) == n and header_d == d
    keys, rows = [], []
    for line in lines:
        if header and line.endswith(" "):
            line = line[:-1]  # fastText ends each .vec line with a blank; vecpack writes it so
        fields = line.split(" ")
        keys.append(" ".join(fields[:-d]))
        rows.append([np.float32(float(x)) for x in fields[-d:]])
    return keys, np.array(rows, np.float32)


def parse_word2vec_binary(path):
    data = open(path, "rb").read()
    header_end = data.index(b"\n")
    n, d = map(int, data[:header_end].split())
    pos, keys, rows = header_end + 1, [], []
    for _ in range(n):
        space = data.index(b" ", pos)
        keys.append(data[pos:space].decode("utf-8"))
        rows.append(np.frombuffer(data, "<f4", d, space + 1))
        pos = space + 1 + 4 * d
        if pos < len(data) and data[pos:pos + 1] == b"\n":
            pos += 1
    assert pos == len(data)
    return keys, np.array(rows, np.float32)


def parse_fvecs(path):
    raw = np.fromfile(path, np.uint8)
    d = int(np.frombuffer(raw[:4].tobytes(), "<i4")[0])
    records = raw.reshape(-1, 4 + 4 * d)
    assert (records[:, :4].copy().view("<i4") == d).all()
    return records[:, 4:].copy().view("<f4")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fmt,name,header", [
    ("word2vec", "t.txt", True), ("word2vec", "t.txt.gz", True), ("fasttext-vec", "t.vec", True),
    ("glove", "t.glove.txt", False), ("glove", "t.glove.txt.gz", False),
])
def test_text_files_agree_with_a_plain_reader(tmp_path, seed, fmt, name, header):
    keys, values = random_table(seed, blanks=fmt == "glove")
    path = tmp_path / name
    vecpack.write(vecpack.compress(values, "f32", keys=keys), path, format=fmt)
    other_keys, other_values = parse_text(path, header, values.shape[1])
    assert other_keys == keys and same_bits(other_values, values)
    own_keys, own_values = read_back(path, fmt)
    assert own_keys == keys and same_bits(own_values, values)


@pytest.mark.parametrize("seed", SEEDS)
def test_word2vec_binary_agrees_with_a_plain_reader(tmp_path, seed):
    keys, values = random_table(seed)
    path = tmp_path / "t.bin"
    vecpack.write(vecpack.compress(values, "f32", keys=keys), path, format="word2vec-bin")
    other_keys, other_values = parse_word2vec_binary(path)
    assert other_keys == keys and same_bits(other_values, values)
    own_keys, own_values = read_back(path, "word2vec-bin")
    assert own_keys == keys and same_bits(own_values, values)


@pytest.mark.parametrize("seed", SEEDS)
def test_gensim_reads_what_vecpack_writes(tmp_path, seed):
    gensim_models = pytest.importorskip("gensim.models", reason="gensim is not installed (pip install gensim)")
    keys, values = random_table(seed)
    table = vecpack.compress(values, "f32", keys=keys)
    for binary, fmt, name in [(False, "word2vec", "t.txt"), (True, "word2vec-bin", "t.bin")]:
        vecpack.write(table, tmp_path / name, format=fmt)
        kv = gensim_models.KeyedVectors.load_word2vec_format(str(tmp_path / name), binary=binary)
        assert list(kv.index_to_key) == keys
        assert same_bits(kv.vectors, values)


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_files_agree_with_numpy_and_h5py(tmp_path, seed):
    keys, values = random_table(seed)
    table = vecpack.compress(values, "f32", keys=keys)
    vecpack.write(table, tmp_path / "t.npy")
    assert same_bits(np.load(tmp_path / "t.npy"), values)
    assert same_bits(read_back(tmp_path / "t.npy")[1], values)
    vecpack.write(table, tmp_path / "t.fvecs")
    assert same_bits(parse_fvecs(tmp_path / "t.fvecs"), values)
    assert same_bits(read_back(tmp_path / "t.fvecs")[1], values)
    table.save(tmp_path / "t.vecpack")
    assert read_back(tmp_path / "t.vecpack")[0] == keys
    assert same_bits(read_back(tmp_path / "t.vecpack")[1], values)
    h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install h5py)")
    vecpack.write(table, tmp_path / "t.h5")
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert same_bits(f["train"][...], values)
        assert [k.decode("utf-8") if isinstance(k, bytes) else k for k in f["words_train"][...]] == keys
    own_keys, own_values = read_back(tmp_path / "t.h5")
    assert own_keys == keys and same_bits(own_values, values)


# ------------------------------------------------------------------ others write, vecpack reads

@pytest.mark.parametrize("seed", SEEDS)
def test_npy_files_numpy_writes_read_exactly(tmp_path, seed):
    rng = np.random.default_rng(1000 + seed)
    _, values = random_table(seed)
    dtype = ["<f4", ">f4", "<f8", ">f8", "<f2", ">f2"][seed % 6]
    if dtype[1:] == "f2":
        values = np.clip(values, -65504, 65504)  # beyond f16's range numpy writes infinity
    array = values.astype(dtype)
    if rng.random() < 0.5:
        array = np.asfortranarray(array)
    path = tmp_path / "t.npy"
    np.save(path, array)
    expected = array.astype(np.float32)  # numpy's own rounding of f64 (and f16 widening)
    with np.errstate(over="ignore"):
        assert same_bits(read_back(path)[1], expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_hdf5_files_h5py_writes_read_exactly(tmp_path, seed):
    h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install h5py)")
    keys, values = random_table(seed)
    dtype = ["<f4", ">f4", "<f8"][seed % 3]
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        options = {"chunks": (max(1, len(values) // 3), values.shape[1]), "compression": "gzip"} if seed % 2 else {}
        f.create_dataset("train", data=values.astype(dtype), **options)
        f.create_dataset("words_train", data=np.array(keys, dtype=h5py.string_dtype("utf-8")))
    own_keys, own_values = read_back(path)
    assert own_keys == keys and same_bits(own_values, values.astype(dtype).astype(np.float32))


def test_a_reader_that_accepts_garbage_would_fail_here(tmp_path):
    # The comparison itself must be able to fail: one flipped bit in a written file is seen.
    keys, values = random_table(3)
    path = tmp_path / "t.bin"
    vecpack.write(vecpack.compress(values, "f32", keys=keys), path, format="word2vec-bin")
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    assert not same_bits(read_back(path, "word2vec-bin")[1], values)
    assert not same_bits(parse_word2vec_binary(path)[1], values)
    assert struct.calcsize("<f") == 4
