"""Codec: training, encoding, decoding and pickling (also into spawned worker processes)."""
import multiprocessing
import pickle

import numpy as np
import pytest

import vecpack


def test_train_encode_decode(clustered):
    x, _ = clustered
    codec = vecpack.Codec("int8")
    assert codec.spec == "int8" and not codec.trained and codec.dim is None and codec.code_size is None
    assert codec.train(x, seed=3) is codec
    assert codec.trained and codec.dim == 24 and codec.code_size == 24

    codes = codec.encode(x)
    assert codes.shape == (600, 24) and codes.dtype == np.uint8
    decoded = codec.decode(codes)
    assert decoded.shape == (600, 24) and decoded.dtype == np.float32
    assert np.abs(decoded - x).max() < 0.05
    assert np.array_equal(codec.encode(x[4]), codes[4])  # one row: 1-D in, 1-D out
    assert np.array_equal(codec.decode(codes[4]), decoded[4])

    with pytest.raises(ValueError, match="dimension"):
        codec.encode(np.ones((2, 5)))
    with pytest.raises(ValueError, match="bytes per row"):
        codec.decode(np.zeros((2, 7), dtype=np.uint8))
    with pytest.raises(vecpack.Error, match="not trained"):
        vecpack.Codec("f16").encode(x)


def test_f32_codes_are_the_floats(clustered):
    x, _ = clustered
    codec = vecpack.Codec("f32").train(x)
    assert np.array_equal(codec.encode(x).view(np.float32), x.astype(np.float32))


def test_pickle_round_trip(clustered):
    x, _ = clustered
    codec = vecpack.Codec("int8").train(x)
    copy = pickle.loads(pickle.dumps(codec))
    assert copy.spec == codec.spec and copy.trained and copy.code_size == codec.code_size
    assert np.array_equal(copy.encode(x), codec.encode(x))
    fresh = pickle.loads(pickle.dumps(vecpack.Codec("f16")))
    assert fresh.spec == "f16" and not fresh.trained


def encode_in_worker(job):
    codec, rows = job
    return codec.encode(rows)


def test_pickled_codecs_work_in_spawned_processes(clustered):
    x, _ = clustered
    codec = vecpack.Codec("int8").train(x)
    chunks = np.array_split(x, 4)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(encode_in_worker, [(codec, chunk) for chunk in chunks])
    assert np.array_equal(np.concatenate(results), codec.encode(x))


def test_damaged_parameters_are_a_format_error(clustered):
    x, _ = clustered
    spec, blob = vecpack.Codec("int8").train(x).__getstate__()
    with pytest.raises(vecpack.FormatError):
        vecpack.Codec.__new__(vecpack.Codec).__setstate__((spec, blob[: len(blob) // 2]))
