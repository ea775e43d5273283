"""A large angular dataset for sublinear-search benchmarks: GloVe-100 rows plus noise.

    .venv/bin/python tools/bench/make_noisy_glove.py glove-100-angular.hdf5 glove-noisy-10m.hdf5 [--rows 10000000]

Each row is a GloVe training row picked at random, plus Gaussian noise of norm about 0.35
(about half the distance from a GloVe word to its nearest neighbour), normalised. Queries are
the dataset's test words with the same noise, and their exact top-100 cosine neighbours are
computed here by brute force. The set keeps GloVe's structure (the clusters, the hubs, the
uneven density a partition must cope with) at 30 times the rows: a query's neighbours are
noisy copies of the words near it, so recall measures whether a search finds the right few
among many close candidates, which is what grows harder with n. Written in the
ann-benchmarks layout (train, test, neighbors, distances; attrs distance="angular").
"""
import argparse

import h5py
import numpy as np

NOISE_NORM = 0.35
K = 100


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with h5py.File(args.source, "r") as f:
        base = unit(np.asarray(f["train"], dtype=np.float32))
        test = unit(np.asarray(f["test"][: args.queries], dtype=np.float32))
    d = base.shape[1]
    sigma = np.float32(NOISE_NORM / np.sqrt(d))
    rows = np.empty((args.rows, d), dtype=np.float32)
    chunk = 1_000_000
    for start in range(0, args.rows, chunk):
        count = min(chunk, args.rows - start)
        picked = rng.integers(0, len(base), count)
        rows[start:start + count] = unit(base[picked] + sigma * rng.standard_normal((count, d), dtype=np.float32))
    queries = unit(test + sigma * rng.standard_normal(test.shape, dtype=np.float32))
    # Exact neighbours: the best K dot products, in blocks of rows.
    best_scores = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), K), dtype=np.int64)
    block = 100_000  # rows per block: the block's scores and their ranks stay under 1.5 GB
    for start in range(0, args.rows, block):
        scores = queries @ rows[start:start + block].T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :K]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
    with h5py.File(args.output, "w") as h:
        h.attrs["distance"] = "angular"
        h.create_dataset("train", data=rows)
        h.create_dataset("test", data=queries)
        h.create_dataset("neighbors", data=best_ids.astype(np.int32))
        h.create_dataset("distances", data=1 - best_scores)
    print(f"wrote {args.output}: {args.rows} rows, {len(queries)} queries, noise norm {NOISE_NORM}")


if __name__ == "__main__":
    main()
