"""What every peer driver shares: `vecpack bench` runs one driver per library beside its own codecs.

A driver names its library and says, for one spec, how to build an index, train it, add the
rows, search, and decode stored rows (a `PeerLibrary`); `run_driver` does the rest, so every
library is measured the same way as vecpack measures itself: the same training sample, the
same recall and reconstruction-error definitions, the same thread count, and min/median/max
over `--runs`.

Every driver takes

    --dataset X.hdf5 --specs "S1;S2" [--queries 1000] [-k 10] [--threads 2] [--runs 3]
    [--train-size 100000] [--seed 1234]

and prints one JSON object on stdout: {"library", "build", "dataset", ..., "results": [rows]}.
Exit codes: 0 success (a spec the library rejects is reported in its row, not fatal), 2 usage
or unusable dataset, 3 library not installed (stdout then holds {"error": "... is not installed"}).
"""
import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECALL_DEPTHS = (1, 10, 100)
RECALL_SEARCH_K = 100
MSE_MAX_SAMPLES = 10_000
METRIC_NAMES = {"angular": "cos", "euclidean": "l2", "dot": "ip"}
TIMED_FIELDS = ("train_seconds", "encode_vectors_per_second", "queries_per_second", "codes_per_second_per_core")
MEASURED_FIELDS = ("bytes_per_vector", "compression_ratio") + tuple(f"recall@{r}" for r in RECALL_DEPTHS) + ("mse",)
# Recall compares found and true neighbours in blocks of queries so the match matrix stays small.
RECALL_BLOCK_QUERIES = 1024


class DatasetError(Exception):
    pass


def progress(message: str) -> None:
    # Callers parse stdout and often capture stderr too: only talk to a person at a terminal.
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def spread(values) -> dict:
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values))}


def finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass
class Dataset:
    """An ann-benchmarks file as the libraries see it: angular rows and queries already unit length."""
    path: str
    distance: str               # "angular", "euclidean" or "dot"
    train: np.ndarray           # float32, rows x dim
    queries: np.ndarray         # float32, nq x dim
    neighbors: np.ndarray       # int64, nq x depth
    norms: np.ndarray | None    # original row norms when angular rows were normalised
    mse_ids: np.ndarray         # rows the reconstruction error is measured on
    mse_originals: np.ndarray   # those rows before normalising, float64

    @property
    def rows(self) -> int:
        return self.train.shape[0]

    @property
    def dim(self) -> int:
        return self.train.shape[1]


def read_ann_file(path: str, query_count: int):
    if not Path(path).is_file():
        raise DatasetError(f"dataset not found: {path}")
    import h5py
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in ("train", "test", "neighbors") if name not in f]
            if missing:
                raise DatasetError(f"{path}: not an ann-benchmarks file, missing dataset(s) {', '.join(missing)}")
            distance = f.attrs.get("distance")
            if isinstance(distance, bytes):
                distance = distance.decode()
            if distance not in METRIC_NAMES:
                raise DatasetError(f"{path}: distance attribute is {distance!r}, expected one of {', '.join(METRIC_NAMES)}")
            train = np.ascontiguousarray(f["train"][:], dtype=np.float32)
            queries = np.ascontiguousarray(f["test"][:query_count], dtype=np.float32)
            neighbors = np.asarray(f["neighbors"][:query_count], dtype=np.int64)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read as HDF5 ({error})") from error
    if train.ndim != 2 or train.shape[0] == 0:
        raise DatasetError(f"{path}: train must be a non-empty 2-d array, got shape {train.shape}")
    if queries.ndim != 2 or queries.shape[1] != train.shape[1] or queries.shape[0] == 0:
        raise DatasetError(f"{path}: test must be non-empty with {train.shape[1]} columns, got shape {queries.shape}")
    if neighbors.ndim != 2 or neighbors.shape[0] != queries.shape[0]:
        raise DatasetError(f"{path}: neighbors must have one row per test row, got shape {neighbors.shape}")
    return train, queries, neighbors, distance


def normalise_rows(rows: np.ndarray) -> np.ndarray:
    """Unit-length rows in place, returning the original norms; zero rows stay zero."""
    norms = np.linalg.norm(rows, axis=1)
    rows /= np.where(norms > 0, norms, 1.0)[:, None]
    return norms


def load_dataset(path: str, query_count: int) -> Dataset:
    train, queries, neighbors, distance = read_ann_file(path, query_count)
    rows = train.shape[0]
    # Keep the sampled original rows before normalising in place: the error is measured against them.
    mse_samples = min(MSE_MAX_SAMPLES, rows)
    mse_ids = np.arange(mse_samples) * (rows // mse_samples)
    mse_originals = train[mse_ids].astype(np.float64)
    norms = None
    if distance == "angular":
        norms = normalise_rows(train)
        normalise_rows(queries)
    return Dataset(path, distance, train, queries, neighbors, norms, mse_ids, mse_originals)


def training_sample(rows: int, train_size: int, seed: int) -> np.ndarray:
    if train_size <= 0 or train_size >= rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=train_size, replace=False))


def recall_at(found: np.ndarray, truth: np.ndarray, depth: int):
    if depth > truth.shape[1] or depth > found.shape[1]:
        return None
    hits = np.concatenate([
        (found[start:start + RECALL_BLOCK_QUERIES, :depth, None] ==
         truth[start:start + RECALL_BLOCK_QUERIES, None, :depth]).any(axis=2).sum(axis=1)
        for start in range(0, found.shape[0], RECALL_BLOCK_QUERIES)])
    return float(np.mean(hits / depth))


def reconstruction_mse(decoded, data: Dataset):
    """Mean squared error of decoded rows (as the index was given them) in the original space."""
    if decoded is None:
        return None
    decoded = np.asarray(decoded, dtype=np.float64)
    if data.norms is not None:
        # Angular data went in unit length; the error is reported in the original space.
        decoded = decoded * data.norms[data.mse_ids, None]
    return float(np.mean((data.mse_originals - decoded) ** 2))


class PeerLibrary:
    """One library's side of a driver; `run_driver` calls these in this order for every spec:
    build, train (timed), add (timed, may return a new object that then serves the searches),
    bytes_per_vector, search, decode."""

    name = ""            # the "library" value of every row
    package = ""         # as in "<package> is not installed"
    specs_help = ""
    trains = False       # False: nothing to learn before adding, train_seconds is 0

    def load(self) -> None:
        """Import the library; ImportError means it is not installed."""
        raise NotImplementedError

    def configure(self, data: Dataset, args) -> None:
        """Fix the metric for this dataset, the thread count and k (args), before any spec is built."""

    def build(self, spec: str, dim: int):
        raise NotImplementedError

    def train(self, index, sample: np.ndarray) -> None:
        """Called only when `trains` is set."""

    def add(self, index, rows: np.ndarray):
        raise NotImplementedError

    def bytes_per_vector(self, index, rows: int) -> float:
        raise NotImplementedError

    def search(self, index, queries: np.ndarray, k: int) -> np.ndarray:
        """Neighbour ids, one row per query."""
        raise NotImplementedError

    def decode(self, index, indexed_rows: np.ndarray, row_ids: np.ndarray):
        """Stored rows row_ids as floats (indexed_rows are those rows as added); None: no decoder."""
        return None

    def error_message(self, error: Exception) -> str:
        return str(error).strip() or type(error).__name__

    def build_description(self) -> str:
        """Version and instruction set, asked after the measurements (some libraries only know then)."""
        raise NotImplementedError


def failed_row(library: PeerLibrary, spec: str, message: str) -> dict:
    return {"library": library.name, "spec": spec, "error": message,
            **{field: None for field in TIMED_FIELDS + MEASURED_FIELDS}}


def measure_spec(library: PeerLibrary, spec: str, data: Dataset, sample: np.ndarray, args) -> dict:
    rows, dim = data.train.shape
    train_seconds, encode_rates = [], []
    index = None
    try:
        for run in range(args.runs):
            index = None  # release the previous run's index before building the next one
            index = library.build(spec, dim)
            seconds = 0.0
            if library.trains:
                start = time.perf_counter()
                library.train(index, sample)
                seconds = time.perf_counter() - start
            train_seconds.append(seconds)
            start = time.perf_counter()
            index = library.add(index, data.train)
            encode_rates.append(rows / (time.perf_counter() - start))
            progress(f"  {spec}: run {run + 1}/{args.runs} trained in {train_seconds[-1]:.3f} s, "
                     f"encoded {encode_rates[-1]:.0f} vectors/s")

        bytes_per_vector = float(library.bytes_per_vector(index, rows))
        found = np.asarray(library.search(index, data.queries, min(RECALL_SEARCH_K, rows)), dtype=np.int64)
        recalls = {f"recall@{r}": recall_at(found, data.neighbors, r) for r in RECALL_DEPTHS}
        decoded = library.decode(index, np.ascontiguousarray(data.train[data.mse_ids]), data.mse_ids)
        mse = reconstruction_mse(decoded, data)

        library.search(index, data.queries, args.k)  # warm-up: page in codes, spin up the thread pool
        search_seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            library.search(index, data.queries, args.k)
            search_seconds.append(time.perf_counter() - start)
    except Exception as error:  # libraries reject bad or unsupported specs with assorted exception types
        return failed_row(library, spec, library.error_message(error))

    query_count = data.queries.shape[0]
    result = {
        "library": library.name,
        "spec": spec,
        "train_seconds": spread(train_seconds),
        "encode_vectors_per_second": spread(encode_rates),
        "bytes_per_vector": bytes_per_vector,
        "compression_ratio": 4.0 * dim / bytes_per_vector,
        **recalls,
        "mse": finite_or_none(mse),
        "queries_per_second": spread([query_count / s for s in search_seconds]),
        "codes_per_second_per_core": spread([rows * query_count / s / args.threads for s in search_seconds]),
    }
    progress(f"  {spec}: {bytes_per_vector:g} bytes/vector, recall@10 {result['recall@10']}, "
             f"{result['queries_per_second']['median']:.0f} queries/s")
    return result


def parse_args(library: PeerLibrary, description: str, spec_aliases=()):
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="ann-benchmarks HDF5 file (train, test, neighbors)")
    ap.add_argument("--specs", *spec_aliases, dest="spec_list", required=True,
                    help=library.specs_help + ", separated by ';'")
    ap.add_argument("--queries", type=int, default=1000, help="first N test rows (default 1000)")
    ap.add_argument("-k", type=int, default=10, help="neighbours per query in the timed searches (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="threads for training, adding and searching (default 2)")
    ap.add_argument("--runs", type=int, default=3, help="timed repetitions (default 3)")
    ap.add_argument("--train-size", type=int, default=100_000, help="training sample rows, 0 = all (default 100000)")
    ap.add_argument("--seed", type=int, default=1234, help="training sample seed (default 1234)")
    args = ap.parse_args()
    for name in ("queries", "k", "threads", "runs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.train_size < 0:
        ap.error("--train-size must be 0 (all rows) or positive")
    args.specs = [spec.strip() for spec in args.spec_list.split(";") if spec.strip()]
    if not args.specs:
        ap.error("--specs names nothing to measure")
    return args


def run_driver(library: PeerLibrary, description: str, spec_aliases=()) -> int:
    """Parse the common options, measure every spec, print the report; returns the exit code."""
    args = parse_args(library, description, spec_aliases)
    driver = f"{library.name}_driver"
    try:
        library.load()
    except ImportError:
        print(json.dumps({"error": f"{library.package} is not installed"}))
        return 3
    try:
        data = load_dataset(args.dataset, args.queries)
    except DatasetError as error:
        print(f"{driver}: {error}", file=sys.stderr)
        return 2
    library.configure(data, args)

    sample_ids = training_sample(data.rows, args.train_size, args.seed)
    sample = data.train if len(sample_ids) == data.rows else np.ascontiguousarray(data.train[sample_ids])
    progress(f"{driver}: {data.rows} x {data.dim} {data.distance}, {data.queries.shape[0]} queries, "
             f"{args.threads} threads")
    results = [measure_spec(library, spec, data, sample, args) for spec in args.specs]
    report = {
        "library": library.name,
        "build": library.build_description(),
        "dataset": args.dataset,
        "rows": data.rows,
        "dim": data.dim,
        "metric": METRIC_NAMES[data.distance],
        "queries": int(data.queries.shape[0]),
        "k": args.k,
        "threads": args.threads,
        "runs": args.runs,
        "results": results,
    }
    print(json.dumps(report, allow_nan=False))
    return 0
