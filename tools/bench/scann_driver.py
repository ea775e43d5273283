"""ScaNN brute-force search, float32 or int8-quantized; one JSON object on stdout.

    .venv/bin/python tools/bench/scann_driver.py --dataset glove-100-angular.hdf5 \\
        --specs "bf;bf-int8" [--queries 1000] [-k 10] [--threads 2] [--runs 3]

Specs: "bf" scores every row in float32 (`score_brute_force()`), "bf-int8" scores int8 codes
with one float multiplier per dimension (`score_brute_force(quantize=True)`). Both are built by
`scann_ops_pybind.builder(rows, k, distance)`: angular rows and queries are normalised and
scored by dot_product, dot by dot_product, euclidean by squared_l2.
There is no separate training step (train_seconds 0, `--train-size` and `--seed` are unused):
the encode rate is the time of `build()`, which for bf-int8 also fits the multipliers on all
rows. Building uses `--threads` training threads. With more than one thread, searches run
`search_batched_parallel`, whose calling thread works beside the searcher's query pool, so the
pool gets `--threads` - 1 threads (`set_num_threads`); one thread runs `search_batched`, since
`search_batched_parallel` crashes on a searcher given no pool threads (scann 1.4.2).
bytes_per_vector and the reconstruction error come from what the searcher serializes: float32
rows, or int8 codes plus the multipliers (and, for squared_l2, one float norm per row), all
divided by the row count; int8 rows decode as code / multiplier.

Exit codes: 0 success (a spec ScaNN rejects is reported in its result, not fatal),
2 usage or unusable dataset, 3 scann not installed.
"""
import importlib.metadata
import sys
import tempfile
from pathlib import Path

import numpy as np

from peer_common import PeerLibrary, run_driver

DISTANCES = {"angular": "dot_product", "euclidean": "squared_l2", "dot": "dot_product"}
QUANTIZE = {"bf": False, "bf-int8": True}


class Searcher:
    """A spec before `add` builds it, then ScaNN's searcher and, once read, its serialized arrays."""

    def __init__(self, spec: str):
        self.spec = spec
        self.scann = None
        self.assets = None


class ScaNN(PeerLibrary):
    name = "scann"
    package = "scann"
    specs_help = "ScaNN brute-force modes (" + ", ".join(QUANTIZE) + ")"

    def load(self) -> None:
        from scann.scann_ops.py import scann_ops_pybind
        self.pybind = scann_ops_pybind

    def configure(self, data, args) -> None:
        self.distance = DISTANCES[data.distance]
        self.threads = args.threads
        self.k = args.k

    def build(self, spec: str, dim: int):
        if spec not in QUANTIZE:
            raise ValueError(f"unknown ScaNN spec {spec!r}, expected one of {', '.join(QUANTIZE)}")
        return Searcher(spec)

    def add(self, index: Searcher, rows: np.ndarray):
        builder = self.pybind.builder(rows, self.k, self.distance)
        builder = builder.score_brute_force(quantize=QUANTIZE[index.spec]).set_n_training_threads(self.threads)
        index.scann = builder.build()
        if self.threads > 1:
            index.scann.set_num_threads(self.threads - 1)
        return index

    def stored_arrays(self, index: Searcher) -> dict:
        """The arrays the searcher serializes (dataset, or int8 codes, multipliers and norms)."""
        if index.assets is None:
            with tempfile.TemporaryDirectory(prefix="scann-") as folder:
                index.scann.serialize(folder)
                index.assets = {path.stem: np.load(path) for path in Path(folder).glob("*.npy")}
        return index.assets

    def bytes_per_vector(self, index: Searcher, rows: int) -> float:
        return sum(array.nbytes for array in self.stored_arrays(index).values()) / rows

    def search(self, index: Searcher, queries: np.ndarray, k: int) -> np.ndarray:
        if self.threads > 1:
            found, _ = index.scann.search_batched_parallel(queries, final_num_neighbors=k)
        else:
            found, _ = index.scann.search_batched(queries, final_num_neighbors=k)
        return found

    def decode(self, index: Searcher, indexed_rows: np.ndarray, row_ids: np.ndarray):
        assets = self.stored_arrays(index)
        if "dataset" in assets:
            return assets["dataset"][row_ids]
        if "int8_dataset" in assets and "int8_multipliers" in assets:
            return assets["int8_dataset"][row_ids] / assets["int8_multipliers"].astype(np.float64)
        return None

    def build_description(self) -> str:
        version = importlib.metadata.version("scann")
        if self.threads == 1:
            return f"scann {version}, search_batched on 1 thread"
        return (f"scann {version}, search_batched_parallel on {self.threads} threads "
                f"(query pool of {self.threads - 1} plus the caller)")


if __name__ == "__main__":
    sys.exit(run_driver(ScaNN(), __doc__))
