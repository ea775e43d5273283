"""Shared-parameter codecs (hash, qr, mixdim) beside pq at equal bytes per row, on GloVe.

    PYTHONPATH=build/python .venv/bin/python tools/bench/shared_bench.py \\
        [--glove /work/data-cache/glove.6B.100d.341k.txt] [--hdf5 /work/data-cache/glove-100-angular.hdf5] \\
        [--budgets 10,25,50] [--queries 1000] [--threads 2]

The table is the GloVe text file in its own order, most frequent word first, which is what
mixdim's blocks and a frequency-weighted workload rely on. Bytes per row count everything the
codec stores (codes + trained parameters, divided by the rows), as `Table.info()["bytes_per_vector"]` reports.
For every budget B the script fits:
  pq:m=B                       B bytes of codes (+ 0.3 B of codebooks)
  hash:rows=R,k=2              4 B of f16 weights + a pool sized to the rest of B
  hash:rows=R,k=2,weights=off  the pool alone (the hashing trick)
  qr:m=M,op=add                quotient + remainder tables of B bytes a row (identity order)
  qr:m=M,op=add,order=learned  the same size with learned slots (4 B a row of it)
  mixdim:budget=B              when the codec is available
and prints, per codec: bytes/row, reconstruction MSE (mean squared error per value against the
original rows), recall@10 on the standard queries (the ann-benchmarks test vectors, 1,000 by
default) and frequency-weighted recall@10 (queries are table rows drawn with probability
proportional to 1 / (rank + 1), i.e. how often a Zipf-distributed workload asks for each
word; a query's own row counts among its neighbours). Exact neighbours: brute-force cosine
over the original rows in float64-accumulated numpy. Fit time is wall time of compress().
"""
import argparse
import sys
import time

import numpy as np

import vecpack


def exact_neighbours(x_unit: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), 250):
        scores = q[start:start + 250] @ x_unit.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start:start + 250] = np.take_along_axis(top, order, axis=1)
    return out


def recall10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))


def specs_for(budget: int, n: int, d: int, with_mixdim: bool) -> list:
    floats_per_row = budget / 4  # of shared float32 parameters
    specs = [f"pq:m={budget}"]
    weighted_rows = max(1, int((budget - 4) / 4 * n / d))
    specs.append(f"hash:rows={weighted_rows},k=2")
    specs.append(f"hash:rows={int(floats_per_row * n / d)},k=2,weights=off")
    # qr add: (n / m + m) rows of d floats; learned slots take 4 bytes a row out of the budget.
    specs.append(f"qr:m={max(1, round(d * 4 / budget))},op=add")
    if budget > 5:
        specs.append(f"qr:m={max(1, round(d * 4 / (budget - 4)))},op=add,order=learned")
    if with_mixdim:
        specs.append(f"mixdim:budget={budget}")
    return specs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glove", default="/work/data-cache/glove.6B.100d.341k.txt")
    parser.add_argument("--hdf5", default="/work/data-cache/glove-100-angular.hdf5")
    parser.add_argument("--budgets", default="10,25,50")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--specs", default="", help="';'-separated specs instead of the budget grid")
    args = parser.parse_args()

    table = vecpack.read(args.glove)
    x = np.asarray(table.vectors, dtype=np.float32)
    n, d = x.shape
    x_unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    import h5py
    with h5py.File(args.hdf5, "r") as f:
        standard = np.asarray(f["test"][: args.queries], dtype=np.float32)
    rng = np.random.default_rng(1234)
    weights = 1.0 / np.arange(1, n + 1)
    drawn = rng.choice(n, size=args.queries, p=weights / weights.sum())
    weighted = x[drawn]
    truth_standard = exact_neighbours(x_unit, standard, 10)
    truth_weighted = exact_neighbours(x_unit, weighted, 10)

    with_mixdim = any(c["name"] == "mixdim" for c in vecpack.codecs())
    rows = []
    if args.specs:
        grid = [(0, s) for s in args.specs.split(";") if s]
    else:
        grid = [(int(b), s) for b in args.budgets.split(",") for s in specs_for(int(b), n, d, with_mixdim)]
    print(f"# GloVe {n} x {d}, {args.queries} queries, {args.threads} threads, vecpack {vecpack.version()}",
          file=sys.stderr)
    for budget, spec in grid:
        start = time.perf_counter()
        try:
            t = vecpack.compress(x, spec, train_size=100000, threads=args.threads)
        except vecpack.Error as e:
            rows.append((budget, spec, "-", str(e), "", "", ""))
            continue
        fit = time.perf_counter() - start
        per_row = t.info()["bytes_per_vector"]
        decoded = np.asarray(t.vectors, dtype=np.float32)
        mse = float(np.mean((decoded - x) ** 2))
        ids_standard, _ = t.search(standard, k=10, threads=args.threads)
        ids_weighted, _ = t.search(weighted, k=10, threads=args.threads)
        rows.append((budget, spec, f"{per_row:.1f}", f"{mse:.5f}", f"{recall10(ids_standard, truth_standard):.3f}",
                     f"{recall10(ids_weighted, truth_weighted):.3f}", f"{fit:.1f}"))
        print(" | ".join(str(v) for v in rows[-1]), file=sys.stderr)
    print("| budget | spec | bytes/row | MSE | recall@10 | freq-weighted recall@10 | fit s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
