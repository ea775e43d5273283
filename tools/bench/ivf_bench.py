"""Sublinear search beside its peers: recall@10 against queries/s for vecpack's ivf tables, FAISS
IVF and HNSW, hnswlib, usearch and ScaNN, all measured in one invocation on one dataset.

    .venv/bin/python tools/bench/ivf_bench.py --dataset glove-100-angular.hdf5 \\
        [--queries 1000] [--threads 1,2] [--runs 3] [--only vecpack,faiss,...] [--json out.json]

Each library runs in processes of its own: one builds every configuration (training and adding
on all cores) and saves it; a second process per configuration opens the saved index (open
seconds), runs one query (RSS growth from before the open), then sweeps the search knob
(nprobe, ef, leaves) and measures, for every thread count, a batch of all queries (median of
--runs) and one query per call (as ann-benchmarks does), with recall@10 against the dataset's
exact neighbours. Angular data is normalised and searched by inner product everywhere.

The summary gives, per configuration, the best queries/s whose recall@10 reaches 0.90 and 0.95
(a dash: never reached), and ratios against the best peer of the same run. A library that is
not installed is reported and skipped. Extra peers: `pip install faiss-cpu scann hnswlib usearch`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = (0.90, 0.95)
K = 10
LISTS = 1024  # lists (ScaNN: leaves) of the partitioned configurations; --lists


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load(dataset: str, queries: int, need_rows: bool):
    import h5py
    with h5py.File(dataset, "r") as f:
        distance = f.attrs.get("distance", "angular")
        distance = distance.decode() if isinstance(distance, bytes) else distance
        rows = np.ascontiguousarray(f["train"][:], dtype=np.float32) if need_rows else None
        test = np.ascontiguousarray(f["test"][:queries], dtype=np.float32)
        truth = np.asarray(f["neighbors"][:queries, :K])
    if distance != "angular":
        raise SystemExit(f"ivf_bench: {dataset} has distance {distance!r}; this benchmark takes angular data")
    if rows is not None:
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    test /= np.maximum(np.linalg.norm(test, axis=1, keepdims=True), 1e-30)
    return rows, test, truth


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[:K].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


# ---- one class per library: configurations, build + save, open, search at a knob -------------

class Library:
    name = ""
    module = ""

    def available(self):
        try:
            __import__(self.module)
            return None
        except ImportError as e:
            return f"{self.module} is not installed ({e})"

    def set_threads(self, threads: int) -> None:
        pass


class Vecpack(Library):
    name, module = "vecpack", "vecpack"
    configs = {
        "ivf{L}r,pq50x4+int8@30": ("ivf:lists={L},residual=on/pq:m=50,nbits=4", "int8", 30),
        "ivf{L}r,pq50x4+int8@40": ("ivf:lists={L},residual=on/pq:m=50,nbits=4", "int8", 40),
        "ivf{L}r,pq50x4+int8@50": ("ivf:lists={L},residual=on/pq:m=50,nbits=4", "int8", 50),
        "ivf{L}r,pq50x4+int8@100": ("ivf:lists={L},residual=on/pq:m=50,nbits=4", "int8", 100),
        "ivf{L}r,pq50x4+int8@200": ("ivf:lists={L},residual=on/pq:m=50,nbits=4", "int8", 200),
        # What `vecpack tune --recall 0.95 --index` picks on GloVe-100.
        "ivf512r,pq50x4+int8@50": ("ivf:lists=512,residual=on/pq:m=50,nbits=4", "int8", 50),
        "ivf{L},pq50x4+int8@100": ("ivf:lists={L}/pq:m=50,nbits=4", "int8", 100),
    }
    knobs = (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 36, 40, 48, 64, 96, 128, 192, 256)
    knob_name = "nprobe"

    def build(self, config, rows, path, threads):
        import vecpack
        spec, rerank, _ = self.configs[config]
        table = vecpack.compress(rows, spec.format(L=LISTS), metric="ip", rerank=rerank, threads=threads)
        table.save(path)

    def open(self, config, path):
        import vecpack
        return vecpack.open(path)

    def set_threads(self, threads):
        self.threads = threads

    def search(self, config, index, queries, knob):
        return index.search(queries, k=K, nprobe=knob, rerank=self.configs[config][2], threads=self.threads)[0]


class Faiss(Library):
    name, module = "faiss", "faiss"
    configs = {
        "IVF{L},PQ25": 1,
        "IVF{L},PQ50x4fs,RFlat": 10,
        "IVF{L},SQ8": 1,
        "IVF{L},RaBitQ,RFlat": 10,
        "HNSW32": 1,
    }
    knobs = (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 36, 40, 48, 64, 96, 128, 192, 256)
    knob_name = "nprobe (HNSW: efSearch)"

    def build(self, config, rows, path, threads):
        import faiss
        faiss.omp_set_num_threads(threads)
        index = faiss.index_factory(rows.shape[1], config.format(L=LISTS), faiss.METRIC_INNER_PRODUCT)
        index.train(rows)
        index.add(rows)
        faiss.write_index(index, path)

    def open(self, config, path):
        import faiss
        return faiss.read_index(path)

    def set_threads(self, threads):
        import faiss
        faiss.omp_set_num_threads(threads)

    def search(self, config, index, queries, knob):
        import faiss
        if config.startswith("HNSW"):
            params = faiss.SearchParametersHNSW(efSearch=max(knob, K))
        else:
            params = faiss.SearchParametersIVF(nprobe=knob)
            if config.endswith("RFlat"):
                params = faiss.IndexRefineSearchParameters(k_factor=self.configs[config], base_index_params=params)
        return index.search(queries, K, params=params)[1]


class Hnswlib(Library):
    name, module = "hnswlib", "hnswlib"
    configs = {"M16,efc200": (16, 200)}
    knobs = (10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128)
    knob_name = "ef"

    def build(self, config, rows, path, threads):
        import hnswlib
        m, efc = self.configs[config]
        index = hnswlib.Index(space="ip", dim=rows.shape[1])
        index.init_index(max_elements=rows.shape[0], M=m, ef_construction=efc, random_seed=1234)
        index.add_items(rows, num_threads=threads)
        index.save_index(path)

    def open(self, config, path):
        import hnswlib
        index = hnswlib.Index(space="ip", dim=int(self.dim))
        index.load_index(path)
        return index

    def set_threads(self, threads):
        self.threads = threads

    def search(self, config, index, queries, knob):
        index.set_ef(max(knob, K))
        return index.knn_query(queries, k=K, num_threads=self.threads)[0]


class Usearch(Library):
    name, module = "usearch", "usearch"
    configs = {"hnsw16,i8": "i8", "hnsw16,f16": "f16"}
    knobs = (10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128)
    knob_name = "expansion_search"

    def build(self, config, rows, path, threads):
        from usearch.index import Index
        index = Index(ndim=rows.shape[1], metric="ip", dtype=self.configs[config], connectivity=16, expansion_add=128)
        index.add(np.arange(rows.shape[0]), rows, threads=threads)
        index.save(path)

    def open(self, config, path):
        from usearch.index import Index
        return Index.restore(path, view=True)

    def set_threads(self, threads):
        self.threads = threads

    def search(self, config, index, queries, knob):
        index.expansion_search = max(knob, K)
        matches = index.search(queries, K, threads=self.threads)
        return np.asarray(matches.keys).reshape(len(queries), -1)


class Scann(Library):
    name, module = "scann", "scann"
    # ann-benchmarks' GloVe-100 settings: a tree of leaves, AH on 2-d blocks, exact reordering.
    configs = {"tree{L},ah2,reorder100": (None, 2, 100),
               "tree600,ah2,reorder100": (600, 2, 100)}  # the tree of ScaNN's own GloVe-100 example
    knobs = (5, 8, 10, 12, 15, 18, 20, 25, 30, 35, 40, 60, 80, 120, 160, 240)
    knob_name = "leaves_to_search"

    def build(self, config, rows, path, threads):
        from scann.scann_ops.py import scann_ops_pybind
        leaves, dims, reorder = self.configs[config]
        leaves = leaves or LISTS
        searcher = (scann_ops_pybind.builder(rows, K, "dot_product")
                    .tree(num_leaves=leaves, num_leaves_to_search=20, training_sample_size=min(250_000, len(rows)))
                    .score_ah(dims, anisotropic_quantization_threshold=0.2)
                    .reorder(reorder)
                    .set_n_training_threads(threads)
                    .build())
        os.makedirs(path, exist_ok=True)
        searcher.serialize(path)

    def open(self, config, path):
        from scann.scann_ops.py import scann_ops_pybind
        return scann_ops_pybind.load_searcher(path)

    def set_threads(self, threads):
        self.threads = threads

    def search(self, config, index, queries, knob):
        reorder = self.configs[config][2]
        if self.threads > 1:
            return index.search_batched_parallel(queries, K, pre_reorder_num_neighbors=reorder, leaves_to_search=knob,
                                                 batch_size=max(1, len(queries) // self.threads))[0]
        return index.search_batched(queries, K, pre_reorder_num_neighbors=reorder, leaves_to_search=knob)[0]


LIBRARIES = {lib.name: lib for lib in (Vecpack(), Faiss(), Hnswlib(), Usearch(), Scann())}


def path_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---- the worker processes --------------------------------------------------------------------

def build_worker(args):
    lib = LIBRARIES[args.library]
    rows, _, _ = load(args.dataset, 1, need_rows=True)
    out = {}
    for config in lib.configs:
        path = Path(args.workdir) / f"{lib.name}-{len(out)}"
        start = time.perf_counter()
        try:
            lib.build(config, rows, str(path), args.build_threads)
        except Exception as e:  # a library that rejects a configuration is reported, not fatal
            out[config] = {"error": f"{type(e).__name__}: {e}"}
            continue
        out[config] = {"build_seconds": time.perf_counter() - start, "path": str(path),
                       "bytes_per_vector": path_size(path) / len(rows), "rows": len(rows), "dim": rows.shape[1]}
    print(json.dumps(out))


def search_worker(args):
    lib = LIBRARIES[args.library]
    _, queries, truth = load(args.dataset, args.queries, need_rows=False)
    lib.dim = queries.shape[1]
    lib.set_threads(1)
    before = rss_mib()
    start = time.perf_counter()
    index = lib.open(args.config, args.path)
    open_seconds = time.perf_counter() - start
    lib.search(args.config, index, queries[:1], lib.knobs[len(lib.knobs) // 2])
    rss = rss_mib() - before
    curve = []
    for threads in args.threads:
        lib.set_threads(threads)
        for knob in lib.knobs:
            found = lib.search(args.config, index, queries, knob)  # warm-up, and the recall
            r = recall(np.asarray(found), truth)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                lib.search(args.config, index, queries, knob)
                times.append(time.perf_counter() - start)
            single = None
            if threads == args.threads[0] or threads > 1:
                start = time.perf_counter()
                for q in range(len(queries)):
                    lib.search(args.config, index, queries[q:q + 1], knob)
                single = len(queries) / (time.perf_counter() - start)
            curve.append({"threads": threads, "knob": knob, "recall": r,
                          "qps": len(queries) / statistics.median(times), "qps_single": single})
            if r > 0.995:
                break  # the curve is flat from here on
    print(json.dumps({"open_seconds": open_seconds, "rss_mib": rss, "curve": curve}))


def run_json(command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_at(curve, threads, target, field="qps"):
    reached = [p[field] for p in curve if p["threads"] == threads and p["recall"] >= target and p[field]]
    return max(reached) if reached else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", default="1,2", help="thread counts to search with (comma separated)")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="libraries to run (comma separated); default all")
    parser.add_argument("--configs", default="", help="run only configurations containing one of these (separated by ;)")
    parser.add_argument("--lists", type=int, default=1024, help="lists of the partitioned configurations (ScaNN: leaves)")
    parser.add_argument("--json", help="also write every measured point here")
    parser.add_argument("--worker", choices=("build", "search"), help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    global LISTS
    LISTS = args.lists
    if args.configs:
        wanted = [c for c in args.configs.split(";") if c]
        for lib in LIBRARIES.values():
            lib.configs = {c: v for c, v in lib.configs.items() if any(w in c for w in wanted)}
    if args.worker == "build":
        return build_worker(args)
    if args.worker == "search":
        return search_worker(args)

    names = [n for n in args.only.split(",") if n] or list(LIBRARIES)
    me = [sys.executable, __file__, "--dataset", args.dataset, "--queries", str(args.queries),
          "--threads", ",".join(map(str, args.threads)), "--runs", str(args.runs), "--lists", str(args.lists),
          "--configs", args.configs]
    results = []
    with tempfile.TemporaryDirectory(prefix="ivf_bench.") as workdir:
        for name in names:
            lib = LIBRARIES[name]
            missing = lib.available()
            if missing:
                print(f"{name}: skipped, {missing}", file=sys.stderr)
                continue
            print(f"{name}: building {len(lib.configs)} configurations", file=sys.stderr, flush=True)
            try:
                built = run_json(me + ["--worker", "build", "--library", name, "--workdir", workdir,
                                       "--build-threads", str(args.build_threads)])
            except RuntimeError as e:
                print(f"{name}: build failed: {e}", file=sys.stderr)
                continue
            for config, b in built.items():
                if "error" in b:
                    print(f"{name} {config}: {b['error']}", file=sys.stderr)
                    continue
                print(f"{name} {config}: built in {b['build_seconds']:.1f} s, searching", file=sys.stderr, flush=True)
                try:
                    s = run_json(me + ["--worker", "search", "--library", name, "--config", config, "--path", b["path"]])
                except RuntimeError as e:
                    print(f"{name} {config}: search failed: {e}", file=sys.stderr)
                    continue
                results.append({"library": name, "config": config.format(L=args.lists), "knob": lib.knob_name, **b, **s})

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"# {Path(args.dataset).name}: {results[0]['rows'] if results else '?'} rows, {args.queries} queries, k={K}; "
          f"queries/s at the best knob whose recall@10 reaches each target (- : never)")
    columns = [(t, th, "qps") for th in args.threads for t in TARGETS] + [(t, args.threads[0], "qps_single") for t in TARGETS]
    header = f"{'library':8} {'configuration':26} {'build s':>7} {'B/vec':>6} {'open s':>7} {'RSS MiB':>7}"
    for t, th, field in columns:
        header += f" {('1q ' if field == 'qps_single' else '') + f'{th}t@{t:.2f}':>10}"
    print(header)
    for r in results:
        line = (f"{r['library']:8} {r['config']:26} {r['build_seconds']:7.1f} {r['bytes_per_vector']:6.1f} "
                f"{r['open_seconds']:7.3f} {r['rss_mib']:7.1f}")
        for t, th, field in columns:
            v = best_at(r["curve"], th, t, field)
            line += f" {v:10.0f}" if v else f" {'-':>10}"
        print(line)
    # vecpack beside the best peer of this run, per column.
    mine = [r for r in results if r["library"] == "vecpack"]
    peers = [r for r in results if r["library"] != "vecpack"]
    if mine and peers:
        print("# vecpack's best / the best peer's (per column)")
        line = f"{'ratio':8} {'':26} {'':7} {'':6} {'':7} {'':7}"
        for t, th, field in columns:
            a = max((best_at(r["curve"], th, t, field) or 0) for r in mine)
            b = max((best_at(r["curve"], th, t, field) or 0) for r in peers)
            line += f" {a / b:10.2f}" if a and b else f" {'-':>10}"
        print(line)


if __name__ == "__main__":
    main()
