"""ScaNN brute-force search: float32, int8, or anisotropic-quantization (AH) codes; one JSON object on stdout.

    .venv/bin/python tools/bench/scann_driver.py --dataset glove-100-angular.hdf5 \\
        --specs "bf;bf-int8;ah2;ah1:t=0.2;ah4;ah2+int8@100" [--queries 1000] [-k 10] \\
        [--threads 2] [--runs 3] [--train-size 100000]

Specs (every one scores all rows, no tree/partitioning):
  "bf"       every row in float32 (`score_brute_force()`);
  "bf-int8"  int8 codes with one float multiplier per dimension (`score_brute_force(quantize=True)`);
  "ahD"      anisotropic product quantization, `score_ah(dimensions_per_block=D,
             anisotropic_quantization_threshold=0.2)`: ceil(dim/D) blocks (the last one shorter when D
             does not divide dim) of 16 centres each, i.e. 4 bits per block per row (LUT16); on 100-d
             rows ah1 = 50 bytes, ah2 = 25, ah4 = 12.5. "ahD:t=T" sets the threshold (t=nan: plain,
             isotropic k-means);
  "ahD[:t=T]+R@N"  the same, then `reorder(N, quantize=...)`: the top N by AH are rescored exactly
             with R = f32 (float32 rows), int8 or bf16 copies the searcher also keeps.
All are built by `scann_ops_pybind.builder(rows, k, distance)`: angular rows and queries are
normalised and scored by dot_product, dot by dot_product, euclidean by squared_l2.
ScaNN trains inside `build()`, so train_seconds is 0 and the encode rate is the time of `build()`:
for bf-int8 that fits the multipliers on all rows, for ah* it includes training the codebooks on
`--train-size` rows (0 = all) that ScaNN samples itself (`--seed` is unused). Building uses
`--threads` training threads. With more than one thread, searches run `search_batched_parallel`,
whose calling thread works beside the searcher's query pool, so the pool gets `--threads` - 1
threads (`set_num_threads`); one thread runs `search_batched`, since `search_batched_parallel`
crashes on a searcher given no pool threads (scann 1.4.2).
bytes_per_vector is what the searcher serializes, divided by the row count: float32 rows, or int8
codes plus the multipliers (and, for squared_l2, one float norm per row); AH codes count 4 bits per
block (ScaNN saves them one per byte but scans them packed two per byte) and the codebook its 4-byte
floats (read from ah_codebook.pb), plus a reordering copy's arrays. The reconstruction error
decodes the same assets: float32 rows as stored, int8 rows as code / multiplier, and AH rows (also
for the +R@N specs, whose first pass scores them) as the concatenated centres their codes pick.

Exit codes: 0 success (a spec ScaNN or this driver rejects is reported in its result, not fatal),
2 usage or unusable dataset, 3 scann not installed.
"""
import importlib.metadata
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from peer_common import PeerLibrary, run_driver

DISTANCES = {"angular": "dot_product", "euclidean": "squared_l2", "dot": "dot_product"}
QUANTIZE = {"bf": False, "bf-int8": True}
AH_SPEC = re.compile(r"^ah(?P<dims>\d+)(?::t=(?P<threshold>[^+]+))?(?:\+(?P<reorder>[a-z0-9]+)@(?P<shortlist>\d+))?$")
AH_THRESHOLD = 0.2
AH_BITS_PER_BLOCK = 4  # score_ah's default hash_type "lut16": 16 centres per block
REORDER_TYPES = ("f32", "int8", "bf16")


class Searcher:
    """A parsed spec before `add` builds it, then ScaNN's searcher and, once read, its serialized assets."""

    def __init__(self, spec: str):
        self.spec = spec
        self.quantize = None        # bf specs: score_brute_force(quantize=...)
        self.dims_per_block = None  # ah specs
        self.threshold = AH_THRESHOLD
        self.reorder = None         # (type, shortlist) for +R@N
        self.scann = None
        self.assets = None          # .npy arrays by name
        self.centres = None         # AH codebook: one (16, block dims) array per block

    def parse(self, dim: int) -> "Searcher":
        if self.spec in QUANTIZE:
            self.quantize = QUANTIZE[self.spec]
            return self
        match = AH_SPEC.match(self.spec)
        if not match:
            raise ValueError(f"unknown ScaNN spec {self.spec!r}, expected bf, bf-int8, ahD, ahD:t=T or ahD+R@N "
                             f"(R one of {', '.join(REORDER_TYPES)})")
        self.dims_per_block = int(match["dims"])
        if not 1 <= self.dims_per_block <= dim:
            raise ValueError(f"{self.spec!r}: dimensions per block must be 1 to {dim}")
        if match["threshold"] is not None:
            try:
                self.threshold = float(match["threshold"])
            except ValueError:
                raise ValueError(f"{self.spec!r}: threshold {match['threshold']!r} is not a number") from None
        if match["reorder"] is not None:
            if match["reorder"] not in REORDER_TYPES:
                raise ValueError(f"{self.spec!r}: reorder type must be one of {', '.join(REORDER_TYPES)}")
            shortlist = int(match["shortlist"])
            if shortlist < 1:
                raise ValueError(f"{self.spec!r}: the reorder shortlist must be at least 1")
            self.reorder = (match["reorder"], shortlist)
        return self


class ScaNN(PeerLibrary):
    name = "scann"
    package = "scann"
    specs_help = "ScaNN brute-force modes (bf, bf-int8, ahD[:t=T][+f32|int8|bf16@N])"

    def load(self) -> None:
        from scann.proto import centers_pb2
        from scann.scann_ops.py import scann_ops_pybind
        from scann.scann_ops.py.scann_builder import ReorderType
        self.pybind = scann_ops_pybind
        self.centers_pb2 = centers_pb2
        self.reorder_types = {"f32": ReorderType.FLOAT32, "int8": ReorderType.INT8, "bf16": ReorderType.BFLOAT16}

    def configure(self, data, args) -> None:
        self.distance = DISTANCES[data.distance]
        self.threads = args.threads
        self.k = args.k
        self.train_size = args.train_size if 0 < args.train_size < data.rows else data.rows

    def build(self, spec: str, dim: int):
        return Searcher(spec).parse(dim)

    def add(self, index: Searcher, rows: np.ndarray):
        builder = self.pybind.builder(rows, self.k, self.distance)
        if index.dims_per_block is None:
            builder = builder.score_brute_force(quantize=index.quantize)
        else:
            builder = builder.score_ah(index.dims_per_block, anisotropic_quantization_threshold=index.threshold,
                                       training_sample_size=self.train_size)
            if index.reorder:
                kind, shortlist = index.reorder
                builder = builder.reorder(shortlist, quantize=self.reorder_types[kind])
        index.scann = builder.set_n_training_threads(self.threads).build()
        if self.threads > 1:
            index.scann.set_num_threads(self.threads - 1)
        return index

    def read_assets(self, index: Searcher) -> None:
        """The arrays the searcher serializes (dataset; int8 codes, multipliers and norms; AH codes and codebook)."""
        if index.assets is not None:
            return
        with tempfile.TemporaryDirectory(prefix="scann-") as folder:
            index.scann.serialize(folder)
            index.assets = {path.stem: np.load(path) for path in Path(folder).glob("*.npy")}
            codebook = Path(folder) / "ah_codebook.pb"
            if codebook.exists():
                parsed = self.centers_pb2.CentersForAllSubspaces.FromString(codebook.read_bytes())
                index.centres = [np.array([list(c.feature_value_float) or list(c.feature_value_double)
                                           for c in block.center], dtype=np.float64)
                                 for block in parsed.subspace_centers]

    def bytes_per_vector(self, index: Searcher, rows: int) -> float:
        self.read_assets(index)
        total = 0.0
        for name, array in index.assets.items():
            if name == "hashed_dataset":
                total += array.size * AH_BITS_PER_BLOCK / 8  # one 4-bit code per block and row
            else:
                total += array.nbytes
        if index.centres is not None:
            total += sum(block.size for block in index.centres) * 4  # float32 centres
        return total / rows

    def search(self, index: Searcher, queries: np.ndarray, k: int) -> np.ndarray:
        if self.threads > 1:
            found, _ = index.scann.search_batched_parallel(queries, final_num_neighbors=k)
        else:
            found, _ = index.scann.search_batched(queries, final_num_neighbors=k)
        return found

    def decode(self, index: Searcher, indexed_rows: np.ndarray, row_ids: np.ndarray):
        self.read_assets(index)
        assets = index.assets
        if "hashed_dataset" in assets and index.centres is not None:
            codes = assets["hashed_dataset"][row_ids]
            if codes.shape[1] != len(index.centres):
                return None
            return np.concatenate([centres[codes[:, b]] for b, centres in enumerate(index.centres)], axis=1)
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
