"""Sharded tables and vecpack.dask on an ann-benchmarks file: encode throughput and search speed.

    PYTHONPATH=build/python .venv/bin/python tools/bench/scale_bench.py \\
        [--dataset /work/data-cache/glove-100-angular.hdf5] [--copies 8] [--workers 1,2] [--runs 3]

1. Encode: the train rows are written as --copies .npy files (each the train set plus a little
   seeded noise), and vecpack.dask.compress encodes them, one shard per file, on a LocalCluster
   of 1 and 2 single-threaded worker processes, with one codec trained beforehand on 100,000
   rows. Reported: rows/s end to end (read, encode, save, manifest), best of --runs.
2. Search: the train rows as one file and as 8 shards (one trained codec), 1,000 test queries,
   k=10, one process (vecpack.open(...).search, all cores) and vecpack.dask.search on 2 workers;
   queries/s, best of --runs, and whether the ids equal the one file's.
Prints a Markdown table.
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import h5py
import numpy as np

SPECS = ("int8", "pq:m=25")


def best_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cluster(workers: int):
    import distributed
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                    silence_logs=logging.ERROR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="/work/data-cache/glove-100-angular.hdf5")
    ap.add_argument("--copies", type=int, default=8, help="input files of the encode test (default 8)")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    try:
        import distributed
        import vecpack
        import vecpack.dask as vd
    except ImportError as error:
        print(f"scale_bench: {error} (PYTHONPATH=build/python and the project venv with dask, distributed)", file=sys.stderr)
        return 3
    with h5py.File(args.dataset) as f:
        train, queries = f["train"][:].astype(np.float32), f["test"][:1000].astype(np.float32)
    worker_counts = [int(w) for w in args.workers.split(",")]
    rng = np.random.default_rng(0)
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="vecpack-scale-") as work:
        files = []
        for i in range(args.copies):
            files.append(os.path.join(work, f"part{i}.npy"))
            np.save(files[-1], train + 0.01 * rng.standard_normal(train.shape, dtype=np.float32))
        total = args.copies * len(train)
        sample = train[rng.choice(len(train), 100_000, replace=False)]
        for spec in SPECS:
            codec = vecpack.Codec(spec).train(sample)
            for workers in worker_counts:
                with cluster(workers) as c, distributed.Client(c) as client:
                    seconds = best_seconds(lambda: vd.compress(files, codec, os.path.join(work, "encoded"), client=client,
                                                               overwrite=True, progress=False), args.runs)
                rows_out.append(f"| encode | {spec} | {workers} worker(s) | {total:,} rows | {total / seconds:,.0f} rows/s |")
            # Search: one file against 8 shards of the same codes.
            whole = vecpack.compress(train, codec)
            single = os.path.join(work, "one.vecpack")
            whole.save(single)
            folder = os.path.join(work, "shards")
            with cluster(2) as c, distributed.Client(c) as client:
                vd.compress(_dask_array(train, 8), codec, folder, client=client,
                            overwrite=True, progress=False)
                one = vecpack.open(single)
                sharded = vecpack.open(folder)
                expected = one.search(queries, k=10)[0]
                for label, search in (("one file, one process", lambda: one.search(queries, k=10)[0]),
                                      ("8 shards, one process", lambda: sharded.search(queries, k=10)[0]),
                                      ("8 shards, vecpack.dask.search, 2 workers",
                                       lambda: vd.search(folder, queries, k=10, client=client)[0])):
                    same = np.array_equal(search(), expected)
                    seconds = best_seconds(search, args.runs)
                    rows_out.append(f"| search | {spec} | {label} | ids equal: {same} | {len(queries) / seconds:,.0f} queries/s |")
    print(f"scale_bench: {args.dataset}, {len(train):,} x {train.shape[1]}, vecpack {vecpack.__version__}, "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| what | codec | setting | detail | figure |")
    print("|---|---|---|---|---|")
    print("\n".join(rows_out))
    return 0


def _dask_array(rows: np.ndarray, blocks: int):
    import dask.array as da
    return da.from_array(rows, chunks=(-(-len(rows) // blocks), rows.shape[1]))


if __name__ == "__main__":
    sys.exit(main())
