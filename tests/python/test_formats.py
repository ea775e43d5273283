"""read() and write() round-trip every format vecpack can both write and read."""
import numpy as np
import pytest

import vecpack

WRITABLE = [f for f in vecpack.formats() if f["can_write"] and f["can_read"]]
# Formats that store integers: their test rows are whole numbers in 0..255.
INTEGER_FORMATS = {"bvecs", "ivecs"}


@pytest.mark.parametrize("fmt", WRITABLE, ids=[f["name"] for f in WRITABLE])
def test_round_trip(fmt, tmp_path):
    rng = np.random.default_rng(6)
    if fmt["name"] in INTEGER_FORMATS:
        rows = rng.integers(0, 256, size=(40, 12)).astype(np.float32)
    else:
        rows = rng.normal(size=(40, 12)).astype(np.float32)
    keys = [f"word{i}" for i in range(40)]
    keys[3] = "naïve"
    table = vecpack.compress(rows, "f32", keys=keys)
    path = tmp_path / ("table" + fmt["extensions"][0])
    vecpack.write(table, path, format=fmt["name"])

    back = vecpack.read(path, format=fmt["name"])
    assert (len(back), back.dim) == (40, 12)
    assert np.array_equal(back.vectors, rows)
    if back.has_keys:
        assert list(back.keys) == keys
    if fmt["name"] != "vecpack":  # a mapped file is used whole
        assert np.array_equal(vecpack.read(path, format=fmt["name"], limit=5).vectors, rows[:5])


def test_gzip_text(tmp_path):
    rows = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    table = vecpack.compress(rows, "f32", keys=[f"w{i}" for i in range(10)])
    vecpack.write(table, tmp_path / "t.txt.gz")
    back = vecpack.read(tmp_path / "t.txt.gz")
    assert np.array_equal(back.vectors, rows) and back.keys[9] == "w9"
