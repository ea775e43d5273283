"""FAISS index-factory strings measured on an ann-benchmarks HDF5 file; one JSON object on stdout.

    .venv/bin/python tools/bench/faiss_driver.py --dataset glove-100-angular.hdf5 \\
        --specs "SQ8;SQfp16;Flat" [--queries 1000] [-k 10] [--threads 2] [--runs 3] \\
        [--train-size 100000] [--seed 1234]

`--factory` is accepted for `--specs`. Training uses the `--train-size` sample; adding, training
and searching run on `--threads` OpenMP threads. Angular data is normalised and searched by
inner product. The measurement and the output are described in peer_common.py.

Exit codes: 0 success (a factory string FAISS rejects is reported in its result, not fatal),
2 usage or unusable dataset, 3 faiss-cpu not installed.
"""
import re
import sys

import numpy as np

from peer_common import PeerLibrary, run_driver

# Decoding through reconstruct_n in blocks keeps memory bounded on large tables.
RECONSTRUCT_BLOCK_ROWS = 65_536
ISA_MODULES = ("swigfaiss_avx512_spr", "swigfaiss_avx512", "swigfaiss_avx2")


class Faiss(PeerLibrary):
    name = "faiss"
    package = "faiss-cpu"
    specs_help = "FAISS index-factory strings"
    trains = True

    def load(self) -> None:
        import faiss
        self.faiss = faiss

    def configure(self, data, args) -> None:
        self.metric = self.faiss.METRIC_L2 if data.distance == "euclidean" else self.faiss.METRIC_INNER_PRODUCT
        # Training and adding run on the same thread count as the search, like vecpack's side.
        self.faiss.omp_set_num_threads(args.threads)

    def build(self, spec: str, dim: int):
        return self.faiss.index_factory(dim, spec, self.metric)

    def train(self, index, sample: np.ndarray) -> None:
        index.train(sample)

    def add(self, index, rows: np.ndarray):
        index.add(rows)
        return index

    def bytes_per_vector(self, index, rows: int) -> float:
        try:
            size = index.sa_code_size()
        except RuntimeError:
            size = 0
        if size:
            return float(size)
        # Indexes without a standalone codec (HNSW, IVF without direct map): whole index per row.
        return self.faiss.serialize_index(index).nbytes / rows

    def search(self, index, queries: np.ndarray, k: int) -> np.ndarray:
        return index.search(queries, k)[1]

    def decode(self, index, indexed_rows: np.ndarray, row_ids: np.ndarray):
        """Rows as the index stores them: its standalone codec if it has one, else its own storage."""
        try:
            return index.sa_decode(index.sa_encode(indexed_rows))
        except RuntimeError:
            pass
        try:
            decoded = np.empty_like(indexed_rows)
            end = int(row_ids[-1]) + 1
            for start in range(0, end, RECONSTRUCT_BLOCK_ROWS):
                block_rows = min(RECONSTRUCT_BLOCK_ROWS, end - start)
                wanted = (row_ids >= start) & (row_ids < start + block_rows)
                if wanted.any():
                    decoded[wanted] = index.reconstruct_n(start, block_rows)[row_ids[wanted] - start]
            return decoded
        except RuntimeError:
            return None

    def error_message(self, error: Exception) -> str:
        """FAISS errors start with the C++ signature and source location; keep the reason."""
        text = str(error).strip()
        match = re.match(r"^Error in .* at \S+:\d+: (.*)$", text, re.DOTALL)
        return (match.group(1) if match else text).strip() or type(error).__name__

    def build_description(self) -> str:
        """Which FAISS binary ran: a per-ISA module (older wheels) or the dynamic-dispatch options."""
        loaded = [name for name in ISA_MODULES if f"faiss.{name}" in sys.modules]
        if loaded:
            return f"faiss {self.faiss.__version__}, " + loaded[0].replace("swigfaiss_", "")
        return f"faiss {self.faiss.__version__}, " + self.faiss.get_compile_options().strip()


if __name__ == "__main__":
    sys.exit(run_driver(Faiss(), __doc__, spec_aliases=("--factory",)))
