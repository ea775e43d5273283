"""Binary codes in vecpack beside FAISS, all measured in one run on an ann-benchmarks file.

    PYTHONPATH=build/python .venv/bin/python tools/bench/binary_bench.py \\
        [--dataset /work/data-cache/glove-100-angular.hdf5] [--queries 1000] [--runs 3] [--threads 1]

Prints one Markdown table with three sections:

1. Hamming scan speed (k=100). vecpack's `binary` table (trained on every row) against FAISS
   IndexBinaryFlat holding the *same* 16-byte codes, read from the table (Table.codes). vecpack
   encodes its own float queries inside search(); FAISS gets query codes computed in numpy by
   vecpack's formula (sign of q - (|q| / mean row norm) * training mean, packed little-endian)
   and the time to make them is not counted. The numpy row codes are checked against
   Table.codes and both sides' Hamming distance lists are compared, so the speed is for the
   same work. codes/s = rows * queries / seconds.
2. One-stage quality and speed (k=10): vecpack's binary family against FAISS index-factory
   strings (LSH variants, RaBitQ, PQ50) on unit-length rows.
3. Two-stage (k=10): a binary shortlist of N candidates rescored with int8 codes (vecpack
   compress(rerank="int8"), search(rerank=N)) against FAISS "X,Refine(SQ8)" with
   k_factor = N / k.

vecpack gets the rows as stored with metric "cos"; FAISS gets unit-length rows searched by
inner product (the same ranking). Recall@10 is against the file's exact neighbours (the first
10 ids found vs the true 10). Searches run on --threads threads (FAISS through
omp_set_num_threads); times are the median of --runs timed searches after one warm-up search,
whose answer gives the recall. bytes/vec counts per-row codes (both stages for two-stage rows),
not codec parameters. A factory string FAISS rejects is reported in its row; for the LSH
strings, which FAISS only builds for METRIC_L2, a second row measures them with METRIC_L2
(the same ranking on unit-length rows; LSH searches by Hamming distance anyway).
"""
import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from peer_common import DatasetError, normalise_rows, read_ann_file, recall_at, training_sample

DEFAULT_DATASET = "/work/data-cache/glove-100-angular.hdf5"
SCAN_K = 100
QUALITY_K = 10
# FAISS IndexRaBitQ query bits (its default is 4). qb=0 (float queries) is left out: it ran at
# about 5 queries/s on glove-100 in a trial, minutes per timed search.
RABITQ_QBITS = (4, 8)


@dataclass
class Data:
    raw_train: np.ndarray      # rows as stored, for vecpack (metric cos)
    raw_queries: np.ndarray
    train: np.ndarray          # unit-length rows, for FAISS (inner product)
    queries: np.ndarray
    neighbors: np.ndarray
    sample: np.ndarray         # FAISS training rows (unit length)

    @property
    def rows(self) -> int:
        return self.train.shape[0]

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    @property
    def nq(self) -> int:
        return self.queries.shape[0]


@dataclass
class Row:
    section: str
    library: str
    spec: str
    k: int
    candidates: str = ""
    bytes_per_vector: float | None = None
    recall10: float | None = None
    seconds: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def load(path: str, query_count: int, train_size: int, seed: int) -> Data:
    train, queries, neighbors, distance = read_ann_file(path, query_count)
    if distance != "angular":
        raise DatasetError(f"{path}: distance is {distance!r}; this benchmark compares cosine (angular) search")
    unit_train, unit_queries = train.copy(), queries.copy()
    normalise_rows(unit_train)
    normalise_rows(unit_queries)
    ids = training_sample(train.shape[0], train_size, seed)
    sample = unit_train if len(ids) == train.shape[0] else np.ascontiguousarray(unit_train[ids])
    return Data(train, queries, unit_train, unit_queries, neighbors, sample)


def timed(search, runs: int):
    """The warm-up search's answer and the median seconds of `runs` timed searches."""
    answer = search()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        search()
        seconds.append(time.perf_counter() - start)
    return answer, statistics.median(seconds)


def faiss_error(error: Exception) -> str:
    """FAISS messages start with the C++ signature and location; keep the reason."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(": ", 2)[-1] if text.startswith("Error in") else text


# ---------------------------------------------------------------- 1. Hamming scan on the same codes

def pack_signs(positive: np.ndarray, code_bytes: int) -> np.ndarray:
    """Bit j of a row = positive[:, j], packed little-endian and zero-padded to code_bytes."""
    n, d = positive.shape
    padded = np.zeros((n, code_bytes * 8), dtype=bool)
    padded[:, :d] = positive
    return np.packbits(padded, axis=1, bitorder="little")


def vecpack_binary_codes(raw_train: np.ndarray, raw_queries: np.ndarray, code_bytes: int):
    """Rows and cos queries encoded as vecpack's binary codec does when trained on every row."""
    mean = raw_train.mean(axis=0, dtype=np.float64)
    mean_norm = np.linalg.norm(raw_train.astype(np.float64), axis=1).mean()
    mean32 = mean.astype(np.float32)
    rows = pack_signs(raw_train - mean32 > 0, code_bytes)
    scale = (np.linalg.norm(raw_queries.astype(np.float64), axis=1) / mean_norm).astype(np.float32)
    queries = pack_signs(raw_queries - scale[:, None] * mean32 > 0, code_bytes)
    return rows, queries


def hamming_rows(vecpack, faiss, data: Data, args):
    table = vecpack.compress(data.raw_train, "binary", metric="cos", train_size=0, threads=args.threads)
    codes = np.ascontiguousarray(table.codes)
    code_bytes = codes.shape[1]
    numpy_rows, query_codes = vecpack_binary_codes(data.raw_train, data.raw_queries, code_bytes)
    same_rows = float(np.mean((numpy_rows == codes).all(axis=1)))

    (ids_vp, scores_vp), s_vp = timed(lambda: table.search(data.raw_queries, k=SCAN_K, threads=args.threads), args.runs)
    index = faiss.IndexBinaryFlat(code_bytes * 8)
    index.add(codes)
    (d_fs, ids_fs), s_fs = timed(lambda: index.search(query_codes, SCAN_K), args.runs)
    # vecpack scores are minus the Hamming distance; equal sorted lists = same query codes and work.
    same_lists = float(np.mean((np.sort(-scores_vp, axis=1) == np.sort(d_fs, axis=1)).all(axis=1)))
    note = f"numpy codes == Table.codes for {same_rows:.2%} of rows; same distance lists for {same_lists:.1%} of queries"
    return [
        Row("1 scan", "vecpack", f"binary ({table.spec})", SCAN_K, "", code_bytes,
            recall_at(ids_vp, data.neighbors, 10), s_vp, "float queries, encoded inside search()"),
        Row("1 scan", "faiss", f"IndexBinaryFlat({code_bytes * 8}), vecpack's codes", SCAN_K, "", code_bytes,
            recall_at(ids_fs, data.neighbors, 10), s_fs, "query codes from numpy (untimed); " + note),
    ]


# ---------------------------------------------------------------- 2./3. vecpack tables

def vecpack_rows(vecpack, data: Data, args, section: str, spec: str, variants, rerank_codec=None):
    """One table built with spec (and a rerank codec), searched once per variant.

    variants: [(label, rerank candidates or None)]."""
    try:
        table = vecpack.compress(data.raw_train, spec, metric="cos", rerank=rerank_codec,
                                 train_size=args.train_size, seed=args.seed, threads=args.threads)
    except Exception as error:
        return [Row(section, "vecpack", label, QUALITY_K, note=f"ERROR: {error}") for label, _ in variants]
    sizes = table.info()["bytes"]
    per_row = (sizes["codes"] + sizes.get("rerank", 0)) / data.rows
    rows = []
    for label, rerank in variants:
        def search():
            return table.search(data.raw_queries, k=QUALITY_K, rerank=rerank, threads=args.threads)[0]
        found, seconds = timed(search, args.runs)
        rows.append(Row(section, "vecpack", label, QUALITY_K, str(rerank or ""), per_row,
                        recall_at(found, data.neighbors, 10), seconds, table.spec))
    return rows


# ---------------------------------------------------------------- 2./3. FAISS indexes

def faiss_code_size(faiss, index) -> float | None:
    """Per-row code bytes; for IndexRefine the base codes plus the refine codes."""
    index = faiss.downcast_index(index)
    try:
        if isinstance(index, faiss.IndexRefine):
            return float(faiss_code_size(faiss, index.base_index) + faiss_code_size(faiss, index.refine_index))
        if isinstance(index, faiss.IndexPreTransform):
            return faiss_code_size(faiss, index.index)
        return float(index.sa_code_size())
    except (RuntimeError, AttributeError):
        return None


def faiss_build(faiss, data: Data, factory: str, metric):
    index = faiss.index_factory(data.dim, factory, metric)
    if not index.is_trained:
        index.train(data.sample)
    index.add(data.train)
    return index


def faiss_rows(faiss, data: Data, args, section: str, factory: str, variants, l2_fallback=False):
    """One index from a factory string, searched once per variant.

    variants: [(label, candidates, function making SearchParameters or None)]."""
    metrics = [("IP", faiss.METRIC_INNER_PRODUCT)] + ([("L2", faiss.METRIC_L2)] if l2_fallback else [])
    rows = []
    for metric_name, metric in metrics:
        try:
            index = faiss_build(faiss, data, factory, metric)
        except Exception as error:
            rows += [Row(section, "faiss", f"{label} [{metric_name}]", QUALITY_K, candidates,
                         note=f"index_factory rejected: {faiss_error(error)}")
                     for label, candidates, _ in variants]
            continue
        size = faiss_code_size(faiss, index)
        for label, candidates, make_params in variants:
            params = make_params() if make_params else None
            found, seconds = timed(lambda: index.search(data.queries, QUALITY_K, params=params)[1], args.runs)
            rows.append(Row(section, "faiss", f"{label} [{metric_name}]", QUALITY_K, candidates, size,
                            recall_at(found, data.neighbors, 10), seconds, type(faiss.downcast_index(index)).__name__))
        break  # the fallback metric only when the first one was rejected
    return rows


def rabitq_params(faiss, qb: int):
    def make():
        params = faiss.RaBitQSearchParameters()
        params.qb = qb
        return params
    return make


def refine_params(faiss, k_factor: int):
    def make():
        params = faiss.IndexRefineSearchParameters()
        params.k_factor = k_factor
        return params
    return make


# ---------------------------------------------------------------- the plan and the table

def measure_all(vecpack, faiss, data: Data, args, say):
    rows = []

    def add(new_rows):
        for row in new_rows:
            say(f"  {row.library} {row.spec} {row.candidates}: recall@10 {row.recall10}, "
                f"{row.seconds if row.seconds is None else round(row.seconds, 3)} s {row.note if row.seconds is None else ''}")
        rows.extend(new_rows)

    if 1 in args.sections:
        say("1. Hamming scan")
        add(hamming_rows(vecpack, faiss, data, args))
    if 2 in args.sections:
        say("2. one-stage")
        one_stage(vecpack, faiss, data, args, add)
    if 3 in args.sections:
        say("3. two-stage")
        two_stage(vecpack, faiss, data, args, add)
    return rows


def one_stage(vecpack, faiss, data: Data, args, add) -> None:
    for spec in ("binary", "binary:center=off", "rotate/binary", "itq/binary", "binary:score=asym",
                 "binary:score=asym,center=off", "rbin:bits=1", "rbin:bits=2", "rbin:bits=4", "rotate/rbin:bits=4",
                 "rbin:bits=4,score=sym", "rbin:bits=8", "rabitq", "l2norm/rabitq", "l2norm/rabitq:qbits=8"):
        add(vecpack_rows(vecpack, data, args, "2 one-stage", spec, [(spec, None)]))
    for factory in ("LSH", "LSHrt", "ITQ100,LSH"):
        add(faiss_rows(faiss, data, args, "2 one-stage", factory, [(factory, "", None)], l2_fallback=True))
    add(faiss_rows(faiss, data, args, "2 one-stage", "RaBitQ",
                   [(f"RaBitQ qb={qb}", "", rabitq_params(faiss, qb)) for qb in RABITQ_QBITS]))
    add(faiss_rows(faiss, data, args, "2 one-stage", "PQ50", [("PQ50", "", None)]))


def two_stage(vecpack, faiss, data: Data, args, add) -> None:
    add(vecpack_rows(vecpack, data, args, "3 two-stage", "binary:center=off",
                     [("binary:center=off + int8", 100), ("binary:center=off + int8", 1000)], rerank_codec="int8"))
    add(vecpack_rows(vecpack, data, args, "3 two-stage", "binary:score=asym,center=off",
                     [("binary:score=asym,center=off + int8", 100), ("binary:score=asym,center=off + int8", 200)],
                     rerank_codec="int8"))
    for spec in ("l2norm/rabitq", "rbin:bits=1", "rbin:bits=2"):
        add(vecpack_rows(vecpack, data, args, "3 two-stage", spec, [(f"{spec} + int8", 100)], rerank_codec="int8"))
    add(faiss_rows(faiss, data, args, "3 two-stage", "PQ25,Refine(SQ8)",
                   [("PQ25,Refine(SQ8)", "100", refine_params(faiss, 100 // QUALITY_K))]))
    add(faiss_rows(faiss, data, args, "3 two-stage", "RaBitQ,Refine(SQ8)",
                   [("RaBitQ,Refine(SQ8)", str(n), refine_params(faiss, n // QUALITY_K)) for n in (100, 1000)]))


def fmt(value, pattern: str) -> str:
    return "" if value is None else format(value, pattern)


def print_table(rows, data: Data) -> None:
    print("| section | library | spec | k | rerank over | bytes/vec | recall@10 | queries/s | Mcodes/s | note |")
    print("|---|---|---|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        qps = data.nq / r.seconds if r.seconds else None
        mcodes = data.rows * data.nq / r.seconds / 1e6 if r.seconds else None
        print(f"| {r.section} | {r.library} | {r.spec} | {r.k} | {r.candidates} | {fmt(r.bytes_per_vector, '.1f')} | "
              f"{fmt(r.recall10, '.4f')} | {fmt(qps, '.0f')} | {fmt(mcodes, '.0f')} | {r.note} |")
    scan = [r for r in rows if r.section == "1 scan" and r.seconds]
    if len(scan) == 2:
        print(f"\nHamming scan, vecpack / FAISS speed: {scan[1].seconds / scan[0].seconds:.2f}x")


def header(vecpack, faiss, data: Data, args) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# binary codes: vecpack vs FAISS, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print()
    print(f"- dataset: {args.dataset}: {data.rows} x {data.dim}, cos; first {data.nq} test queries; "
          f"training sample {args.train_size or data.rows} rows (seed {args.seed})")
    print(f"- {args.threads} thread(s), median of {args.runs} timed searches after a warm-up; "
          f"host {platform.node()}, {os.cpu_count()} CPUs, load average {load}")
    print(f"- vecpack {vecpack.__version__}, kernels {vecpack.kernel_isa()}")
    print(f"- faiss {faiss.__version__}, compile options: {faiss.get_compile_options().strip()}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=DEFAULT_DATASET, help="ann-benchmarks HDF5 file with angular distance")
    ap.add_argument("--queries", type=int, default=1000, help="first N test rows (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="timed searches per row; the median is reported (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="search, training and encoding threads (default 1)")
    ap.add_argument("--train-size", type=int, default=100_000,
                    help="training sample rows for sections 2 and 3, 0 = all (default 100000)")
    ap.add_argument("--seed", type=int, default=1234, help="training sample seed (default 1234)")
    ap.add_argument("--sections", default="1,2,3", help="sections to measure, e.g. 1 or 2,3 (default 1,2,3)")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = ap.parse_args()
    try:
        args.sections = {int(part) for part in args.sections.split(",")}
    except ValueError:
        ap.error("--sections takes numbers 1-3 separated by commas")
    if not args.sections <= {1, 2, 3}:
        ap.error("--sections takes numbers 1-3 separated by commas")
    for name in ("queries", "runs", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    try:
        import faiss
        import vecpack
    except ImportError as error:
        print(f"binary_bench: {error} (run with PYTHONPATH=build/python and the project venv)", file=sys.stderr)
        return 3
    faiss.omp_set_num_threads(args.threads)
    try:
        data = load(args.dataset, args.queries, args.train_size, args.seed)
    except DatasetError as error:
        print(f"binary_bench: {error}", file=sys.stderr)
        return 2

    def say(message: str) -> None:
        if args.verbose:
            print(message, file=sys.stderr, flush=True)

    rows = measure_all(vecpack, faiss, data, args, say)
    header(vecpack, faiss, data, args)
    print_table(rows, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
