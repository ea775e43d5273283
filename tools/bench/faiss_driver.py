"""FAISS index-factory strings measured on an ann-benchmarks HDF5 file; one JSON object on stdout.

    .venv/bin/python tools/bench/faiss_driver.py --dataset glove-100-angular.hdf5 \
        --factory "SQ8;SQfp16;Flat" [--queries 1000] [-k 10] [--threads 2] [--runs 3] \
        [--train-size 100000] [--seed 1234]

`vecpack bench` runs this beside its own codecs and merges the results, so every figure here is
measured the way vecpack measures its own: the same training sample, the same recall and
reconstruction-error definitions, the same thread count, and min/median/max over `--runs`.

Exit codes: 0 success (a factory string FAISS rejects is reported in its result, not fatal),
2 usage or unusable dataset, 3 faiss-cpu not installed.
"""
import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RECALL_DEPTHS = (1, 10, 100)
RECALL_SEARCH_K = 100
MSE_MAX_SAMPLES = 10_000
# Decoding through reconstruct_n in blocks keeps memory bounded on large tables.
RECONSTRUCT_BLOCK_ROWS = 65_536
METRIC_NAMES = {"angular": "cos", "euclidean": "l2", "dot": "ip"}
ISA_MODULES = ("swigfaiss_avx512_spr", "swigfaiss_avx512", "swigfaiss_avx2")
TIMED_FIELDS = ("train_seconds", "encode_vectors_per_second", "queries_per_second", "codes_per_second_per_core")
MEASURED_FIELDS = ("bytes_per_vector", "compression_ratio") + tuple(f"recall@{r}" for r in RECALL_DEPTHS) + ("mse",)


class DatasetError(Exception):
    pass


def progress(message: str) -> None:
    # Callers parse stdout and often capture stderr too: only talk to a person at a terminal.
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def faiss_build(faiss) -> str:
    """Which FAISS binary ran: a per-ISA module (older wheels) or the dynamic-dispatch options."""
    loaded = [name for name in ISA_MODULES if f"faiss.{name}" in sys.modules]
    if loaded:
        return f"faiss {faiss.__version__}, " + loaded[0].replace("swigfaiss_", "")
    return f"faiss {faiss.__version__}, " + faiss.get_compile_options().strip()


def faiss_message(error: Exception) -> str:
    """FAISS errors start with the C++ signature and source location; keep the reason."""
    text = str(error).strip()
    match = re.match(r"^Error in .* at \S+:\d+: (.*)$", text, re.DOTALL)
    return (match.group(1) if match else text).strip() or type(error).__name__


def spread(values) -> dict:
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values))}


def finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def load_dataset(path: str, query_count: int):
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


def training_sample(rows: int, train_size: int, seed: int) -> np.ndarray:
    if train_size <= 0 or train_size >= rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=train_size, replace=False))


def code_size(faiss, index, rows: int) -> float:
    try:
        size = index.sa_code_size()
    except RuntimeError:
        size = 0
    if size:
        return float(size)
    # Indexes without a standalone codec (HNSW, IVF without direct map): whole index per row.
    return faiss.serialize_index(index).nbytes / rows


def recall_at(found: np.ndarray, truth: np.ndarray, depth: int):
    if depth > truth.shape[1] or depth > found.shape[1]:
        return None
    # Compared in blocks of queries so the depth x depth match matrix stays small.
    hits = np.concatenate([
        (found[start:start + 1024, :depth, None] == truth[start:start + 1024, None, :depth]).any(axis=2).sum(axis=1)
        for start in range(0, found.shape[0], 1024)])
    return float(np.mean(hits / depth))


def decode_rows(index, encoded_rows: np.ndarray, row_ids: np.ndarray):
    """Rows as the index stores them: its standalone codec if it has one, else its own storage."""
    try:
        return index.sa_decode(index.sa_encode(encoded_rows))
    except RuntimeError:
        pass
    try:
        decoded = np.empty_like(encoded_rows)
        for start in range(0, int(row_ids[-1]) + 1, RECONSTRUCT_BLOCK_ROWS):
            block_rows = min(RECONSTRUCT_BLOCK_ROWS, int(row_ids[-1]) + 1 - start)
            wanted = (row_ids >= start) & (row_ids < start + block_rows)
            if wanted.any():
                decoded[wanted] = index.reconstruct_n(start, block_rows)[row_ids[wanted] - start]
        return decoded
    except RuntimeError:
        return None


def reconstruction_mse(index, indexed_rows: np.ndarray, original_rows: np.ndarray, row_ids: np.ndarray,
                       norms) -> float:
    decoded = decode_rows(index, np.ascontiguousarray(indexed_rows[row_ids]), row_ids)
    if decoded is None:
        return None
    decoded = decoded.astype(np.float64)
    if norms is not None:
        # Angular data went in unit length; the error is reported in the original space.
        decoded *= norms[row_ids, None]
    return float(np.mean((original_rows - decoded) ** 2))


def measure_spec(faiss, spec: str, metric: int, train: np.ndarray, sample_ids: np.ndarray, queries: np.ndarray,
                 neighbors: np.ndarray, mse_ids: np.ndarray, mse_originals: np.ndarray, norms, args) -> dict:
    rows, dim = train.shape
    result = {"library": "faiss", "spec": spec}
    train_seconds, encode_rates = [], []
    index = None
    sample = train if len(sample_ids) == rows else np.ascontiguousarray(train[sample_ids])
    try:
        for run in range(args.runs):
            index = None  # release the previous run's index before building the next one
            index = faiss.index_factory(dim, spec, metric)
            start = time.perf_counter()
            index.train(sample)
            train_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            index.add(train)
            encode_rates.append(rows / (time.perf_counter() - start))
            progress(f"  {spec}: run {run + 1}/{args.runs} trained in {train_seconds[-1]:.3f} s, "
                     f"encoded {encode_rates[-1]:.0f} vectors/s")

        bytes_per_vector = code_size(faiss, index, rows)
        _, found = index.search(queries, min(RECALL_SEARCH_K, rows))
        recalls = {f"recall@{r}": recall_at(found, neighbors, r) for r in RECALL_DEPTHS}
        mse = reconstruction_mse(index, train, mse_originals, mse_ids, norms)

        index.search(queries, args.k)  # warm-up: page in codes, spin up the thread pool
        search_seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            index.search(queries, args.k)
            search_seconds.append(time.perf_counter() - start)
    except Exception as error:  # FAISS reports bad or unsupported specs as RuntimeError, some as others
        result["error"] = faiss_message(error)
        for field in TIMED_FIELDS + MEASURED_FIELDS:
            result[field] = None
        return result

    query_count = queries.shape[0]
    result.update({
        "train_seconds": spread(train_seconds),
        "encode_vectors_per_second": spread(encode_rates),
        "bytes_per_vector": bytes_per_vector,
        "compression_ratio": 4.0 * dim / bytes_per_vector,
        **recalls,
        "mse": finite_or_none(mse),
        "queries_per_second": spread([query_count / s for s in search_seconds]),
        "codes_per_second_per_core": spread([rows * query_count / s / args.threads for s in search_seconds]),
    })
    progress(f"  {spec}: {bytes_per_vector:g} bytes/vector, recall@10 {result['recall@10']}, "
             f"{result['queries_per_second']['median']:.0f} queries/s")
    return result


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="ann-benchmarks HDF5 file (train, test, neighbors)")
    ap.add_argument("--factory", required=True, help="FAISS index-factory strings separated by ';'")
    ap.add_argument("--queries", type=int, default=1000, help="first N test rows (default 1000)")
    ap.add_argument("-k", type=int, default=10, help="neighbours per query in the timed searches (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="OpenMP threads (default 2)")
    ap.add_argument("--runs", type=int, default=3, help="timed repetitions (default 3)")
    ap.add_argument("--train-size", type=int, default=100_000, help="training sample rows, 0 = all (default 100000)")
    ap.add_argument("--seed", type=int, default=1234, help="training sample seed (default 1234)")
    args = ap.parse_args()
    for name in ("queries", "k", "threads", "runs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.train_size < 0:
        ap.error("--train-size must be 0 (all rows) or positive")
    args.specs = [spec.strip() for spec in args.factory.split(";") if spec.strip()]
    if not args.specs:
        ap.error("--factory names no index")
    return args


def main() -> int:
    args = parse_args()
    try:
        import faiss
    except ImportError:
        print(json.dumps({"error": "faiss-cpu is not installed"}))
        return 3

    try:
        train, queries, neighbors, distance = load_dataset(args.dataset, args.queries)
    except DatasetError as error:
        print(f"faiss_driver: {error}", file=sys.stderr)
        return 2
    rows, dim = train.shape

    # Keep the sampled original rows before normalising in place: the error is measured against them.
    mse_samples = min(MSE_MAX_SAMPLES, rows)
    mse_ids = np.arange(mse_samples) * (rows // mse_samples)
    mse_originals = train[mse_ids].astype(np.float64)
    norms = None
    if distance == "angular":
        norms = normalise_rows(train)
        normalise_rows(queries)
    metric = faiss.METRIC_L2 if distance == "euclidean" else faiss.METRIC_INNER_PRODUCT
    # Training and adding run on the same thread count as the search, like vecpack's side.
    faiss.omp_set_num_threads(args.threads)
    sample_ids = training_sample(rows, args.train_size, args.seed)

    progress(f"faiss_driver: {rows} x {dim} {distance}, {queries.shape[0]} queries, {args.threads} threads")
    results = [measure_spec(faiss, spec, metric, train, sample_ids, queries, neighbors, mse_ids, mse_originals,
                            norms, args) for spec in args.specs]
    report = {
        "library": "faiss",
        "build": faiss_build(faiss),
        "dataset": args.dataset,
        "rows": rows,
        "dim": dim,
        "metric": METRIC_NAMES[distance],
        "queries": int(queries.shape[0]),
        "k": args.k,
        "threads": args.threads,
        "runs": args.runs,
        "results": results,
    }
    print(json.dumps(report, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
