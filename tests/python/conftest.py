import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("VECPACK_DATA", ROOT / "data"))
BIN = os.environ.get("VECPACK_BIN", str(ROOT / "build" / "vecpack"))
GLOVE_SAMPLE = DATA / "glove.6B.100d.15k.txt.gz"

# ctest sets PYTHONPATH; by hand, `pytest tests/python` uses the package that tools/setup.sh built.
try:
    import vecpack  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "build" / "python"))
    import vecpack  # noqa: F401


def run_cli(*args):
    """Runs the vecpack binary; its stdout."""
    if not Path(BIN).exists():
        pytest.skip(f"the vecpack binary is not built ({BIN})")
    proc = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"vecpack {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def glove():
    """The 15,000-word GloVe sample, read into memory (f32, cos)."""
    return vecpack.read(GLOVE_SAMPLE)


@pytest.fixture(scope="session")
def glove_file(glove, tmp_path_factory):
    path = tmp_path_factory.mktemp("glove") / "glove.f32.vecpack"
    glove.save(path)
    return path


@pytest.fixture(scope="session")
def glove_int8_file(glove, tmp_path_factory):
    path = tmp_path_factory.mktemp("glove") / "glove.int8.vecpack"
    glove.compress("int8").save(path)
    return path


@pytest.fixture
def clustered():
    """(X, keys): 600 clustered 24-d float64 rows and their keys k0..k599."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 24))
    x = centres[rng.integers(0, 12, 600)] + 0.3 * rng.normal(size=(600, 24))
    return x, [f"k{i}" for i in range(600)]
