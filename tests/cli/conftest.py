import os
import subprocess
from pathlib import Path

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
