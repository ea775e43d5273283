"""Exact float32 search: vecpack beside FAISS IndexFlatIP, measured in the same run.

    .venv/bin/python tools/bench/flat_search.py glove-100-angular.hdf5 [--queries 1000] [-k 10] [--threads 2]

Both search the ann-benchmarks train set with the same queries and thread count; FAISS gets
unit-length rows (IndexFlatIP on normalised data is cosine), vecpack its cos metric on the rows
as stored. Each side runs several times; medians and their ratio are printed.
vecpack's recall@10 against the dataset's exact neighbours shows the speed is for the same
answer.
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

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def faiss_build(faiss) -> str:
    """Which FAISS binary ran: per-ISA module (older wheels) or dynamic dispatch (DD)."""
    loaded = [m for m in ("swigfaiss_avx512_spr", "swigfaiss_avx512", "swigfaiss_avx2") if f"faiss.{m}" in sys.modules]
    options = faiss.get_compile_options().strip()
    return f"faiss {faiss.__version__}, " + (loaded[0].replace("swigfaiss_", "") if loaded else options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--vecpack", default=str(ROOT / "build" / "vecpack"))
    args = ap.parse_args()
    try:
        import faiss
    except ImportError:
        sys.exit("faiss-cpu is not installed: .venv/bin/pip install faiss-cpu")

    with h5py.File(args.dataset, "r") as f:
        train = np.ascontiguousarray(f["train"][:], dtype=np.float32)
        test = np.ascontiguousarray(f["test"][: args.queries], dtype=np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        packed = os.path.join(tmp, "f32.vecpack")
        subprocess.run([args.vecpack, "-q", "compress", args.dataset, "-o", packed, "--codec", "f32"], check=True)
        out = subprocess.run([args.vecpack, "eval", packed, "--dataset", args.dataset, "--queries", str(args.queries),
                              "-k", str(args.k), "--threads", str(args.threads), "--runs", str(args.runs), "--json"],
                             check=True, capture_output=True, text=True).stdout
        vp = json.loads(out)

    faiss.omp_set_num_threads(args.threads)
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(train.shape[1])
    index.add(norm(train))
    qn = norm(test)
    index.search(qn, args.k)  # warm up
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        index.search(qn, args.k)
        times.append(time.perf_counter() - start)
    faiss_qps = args.queries / statistics.median(times)
    vp_qps = vp["qps"]

    blas = os.environ.get("OPENBLAS_CORETYPE", "auto-detected")
    print(f"OpenBLAS core type: {blas} (both sides)")
    print(f"exact search, {train.shape[0]} x {train.shape[1]} f32, {args.queries} queries, k={args.k}, "
          f"{args.threads} threads, median of {args.runs} runs")
    print(f"  vecpack f32 (cos, kernels {vp['isa']}): {vp_qps:10.0f} queries/s   recall@10 {vp['recall@10']:.4f}")
    print(f"  FAISS IndexFlatIP [{faiss_build(faiss)}]: {faiss_qps:10.0f} queries/s")
    print(f"  ratio vecpack/FAISS: {vp_qps / faiss_qps:.2f}")


if __name__ == "__main__":
    main()
