import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

BIN = os.environ.get("VECPACK_BIN", str(Path(__file__).resolve().parents[2] / "build" / "vecpack"))
DATA = Path(os.environ.get("VECPACK_DATA", Path(__file__).resolve().parents[2] / "data"))


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr


def run(*args, check=True):
    proc = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"vecpack {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return Result(proc)


@pytest.fixture
def vp():
    return run


def write_glove(path, words, vectors):
    with open(path, "w", encoding="utf-8") as f:
        for w, v in zip(words, vectors):
            f.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")


@pytest.fixture
def glove_small(tmp_path):
    """500 clustered 16-d rows in GloVe text, keys w0..w499."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(10, 16)).astype(np.float32)
    x = centres[rng.integers(0, 10, 500)] + 0.3 * rng.normal(size=(500, 16)).astype(np.float32)
    x = x.astype(np.float32)
    words = [f"w{i}" for i in range(500)]
    path = tmp_path / "small.txt"
    write_glove(path, words, x)
    return path, words, x


@pytest.fixture
def angular_dataset(tmp_path):
    """2,000 clustered 16-d train rows, 50 queries, exact cosine top-100 neighbours."""
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(20, 16))
    train = (centres[rng.integers(0, 20, 2000)] + 0.4 * rng.normal(size=(2000, 16))).astype(np.float32)
    test = (centres[rng.integers(0, 20, 50)] + 0.4 * rng.normal(size=(50, 16))).astype(np.float32)
    unit = lambda a: a.astype(np.float64) / np.linalg.norm(a, axis=1, keepdims=True)
    sims = unit(test) @ unit(train).T
    order = np.argsort(-sims, axis=1, kind="stable")
    # Exact recall 1.0 is only a fair demand if float32 rounding cannot move a neighbour across
    # the cuts recall@1/10/100 look at (order within a cut does not matter to them).
    ranked = np.take_along_axis(sims, order, axis=1)
    cuts = np.array([1, 10, 100])
    assert np.min(ranked[:, cuts - 1] - ranked[:, cuts]) > 1e-5
    path = tmp_path / "small-16-angular.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=order[:, :100].astype(np.int32))
        f.attrs["distance"] = "angular"
    return path
