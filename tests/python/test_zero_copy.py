"""Rows of an f32 file and the codes of any file are views of the memory mapping, never copies."""
import gc
import shutil

import numpy as np
import pytest

import vecpack


def mapping_of(address):
    """The file /proc/self/maps shows at an address, or None for anonymous memory."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            begin, end = (int(x, 16) for x in fields[0].split("-"))
            if begin <= address < end:
                return fields[5].strip() if len(fields) == 6 else None
    return None


def resident_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no VmRSS in /proc/self/status")


def test_f32_vectors_are_a_read_only_view_of_the_file(glove_file):
    t = vecpack.open(glove_file)
    vectors = t.vectors
    assert vectors.shape == (15000, 100) and vectors.dtype == np.float32
    assert vectors.base is t  # the array keeps the table, and so the mapping, alive
    assert np.shares_memory(vectors, t.vectors)
    assert mapping_of(vectors.ctypes.data) == str(glove_file)
    assert vectors.flags.writeable is False
    with pytest.raises(ValueError):
        vectors[0, 0] = 1.0
    king = t["king"].copy()
    row = t.find("king")
    del t
    gc.collect()
    assert np.array_equal(vectors[row], king)


def test_codes_are_a_read_only_view(glove_int8_file, glove_file):
    t = vecpack.open(glove_int8_file)
    codes = t.codes
    assert codes.shape == (15000, 100) and codes.dtype == np.uint8 and not codes.flags.writeable
    assert codes.base is t and mapping_of(codes.ctypes.data) == str(glove_int8_file)
    # Other codecs decode once into an array the table keeps (read-only); decode() copies anew.
    decoded = t.vectors
    assert not decoded.flags.writeable and t.vectors is decoded
    fresh = t.decode()
    assert fresh.flags.writeable and not np.shares_memory(fresh, decoded)
    assert np.array_equal(decoded[10:20], t[10:20]) and np.array_equal(fresh, decoded)

    f32 = vecpack.open(glove_file)
    assert np.array_equal(f32.codes.view(np.float32), f32.vectors) and np.shares_memory(f32.codes, f32.vectors)


def test_in_memory_f32_tables_are_views_too(clustered):
    x, keys = clustered
    t = vecpack.compress(x, "f32", keys=keys)
    assert t.vectors.base is t and np.shares_memory(t.vectors, t.vectors) and not t.vectors.flags.writeable


def test_opening_a_large_file_costs_little_memory(tmp_path):
    rows, dim = 500_000, 100  # 200 MB of float32
    size = rows * dim * 4
    if shutil.disk_usage(tmp_path).free < 3 * size:
        pytest.skip("not enough free disk space for a 200 MB file")
    path = tmp_path / "large.vecpack"
    x = np.random.default_rng(1).standard_normal((rows, dim), dtype=np.float32)
    vecpack.compress(x, "f32").save(path)
    del x
    gc.collect()

    try:
        before = resident_bytes()
        t = vecpack.open(path)
        vectors = t.vectors
        one = t[rows // 2]
        grown = resident_bytes() - before
        assert vectors.shape == (rows, dim) and one.shape == (dim,)
        assert grown < size // 20, f"opening a {size >> 20} MiB file grew the process by {grown >> 20} MiB"
    finally:
        path.unlink()  # pytest keeps the temporary folders of recent runs
