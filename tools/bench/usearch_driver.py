"""USearch exact search over vectors stored as f32, f16, bf16, i8 or f64; one JSON object on stdout.

    .venv/bin/python tools/bench/usearch_driver.py --dataset glove-100-angular.hdf5 \\
        --specs "f32;f16;bf16;i8" [--queries 1000] [-k 10] [--threads 2] [--runs 3]

Each spec is a `usearch.index.Index` storing the rows in that scalar type, searched with
`exact=True` (brute force over the stored vectors, not the HNSW graph). Metrics: angular ->
cos (rows and queries normalised first, as for every library), euclidean -> l2sq, dot -> ip.
Nothing is trained (train_seconds 0, `--train-size` and `--seed` are unused); the encode rate
is the time of `Index.add`, which also builds the HNSW graph the exact search does not use.
bytes_per_vector is one stored vector (dim x scalar size); the graph is not counted.
The reconstruction error is measured on `Index.get` (decoded to float32). USearch's i8 stores
every row scaled to unit length (x 127) whatever the metric, so under l2sq and ip the error
includes the lost norms.
The build string names the SIMD kernels USearch chose for each spec's metric and scalar type.

Exit codes: 0 success (a spec USearch rejects is reported in its result, not fatal),
2 usage or unusable dataset, 3 usearch not installed.
"""
import sys

import numpy as np

from peer_common import PeerLibrary, run_driver

METRICS = {"angular": "cos", "euclidean": "l2sq", "dot": "ip"}
SCALAR_BYTES = {"f64": 8, "f32": 4, "f16": 2, "bf16": 2, "i8": 1}


def stored_type(index) -> str:
    """The index's scalar type in spec spelling: ScalarKind.BF16 -> "bf16"."""
    return str(index.dtype).rsplit(".", 1)[-1].lower()


class USearch(PeerLibrary):
    name = "usearch"
    package = "usearch"
    specs_help = "USearch scalar types (" + ", ".join(SCALAR_BYTES) + ")"

    def load(self) -> None:
        import usearch
        import usearch.index
        self.usearch = usearch

    def configure(self, data, args) -> None:
        self.metric = METRICS[data.distance]
        self.threads = args.threads
        self.kernels = {}  # spec -> the SIMD capability USearch reports for it

    def build(self, spec: str, dim: int):
        if spec not in SCALAR_BYTES:
            raise ValueError(f"unknown USearch scalar type {spec!r}, expected one of {', '.join(SCALAR_BYTES)}")
        index = self.usearch.index.Index(ndim=dim, metric=self.metric, dtype=spec)
        # USearch may pick another type when asked for one it cannot store; measure only what was asked.
        stored = stored_type(index)
        if stored != spec:
            raise ValueError(f"USearch stores {stored} when asked for {spec}")
        self.kernels[spec] = index.hardware_acceleration
        return index

    def add(self, index, rows: np.ndarray):
        index.add(np.arange(rows.shape[0], dtype=np.uint64), rows, threads=self.threads)
        return index

    def bytes_per_vector(self, index, rows: int) -> float:
        return float(index.ndim * SCALAR_BYTES[stored_type(index)])

    def search(self, index, queries: np.ndarray, k: int) -> np.ndarray:
        matches = index.search(queries, k, exact=True, threads=self.threads)
        found = matches.keys.astype(np.int64)
        # Slots past a query's match count hold a sentinel key, not a row.
        found[np.arange(k)[None, :] >= np.asarray(matches.counts)[:, None]] = -1
        return found

    def decode(self, index, indexed_rows: np.ndarray, row_ids: np.ndarray):
        decoded = index.get(row_ids.astype(np.uint64), dtype=np.float32)
        return np.vstack(decoded) if isinstance(decoded, tuple) else decoded

    def build_description(self) -> str:
        kernels = set(self.kernels.values())
        if len(kernels) == 1:
            described = kernels.pop()
        else:
            described = ", ".join(f"{spec} {kernel}" for spec, kernel in self.kernels.items())
        return f"usearch {self.usearch.__version__}, " + (described or "no index built")


if __name__ == "__main__":
    sys.exit(run_driver(USearch(), __doc__))
