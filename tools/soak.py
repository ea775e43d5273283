#!/usr/bin/env python3
"""Soak: readers search one mapped table for minutes while a writer keeps replacing it.

4 reader processes x 2 threads open the table, search it and check every answer, while a fifth
process replaces the file atomically every few seconds with the other of two versions (the
second is the first with every row negated, so each answer shows which version it came from:
its ids and scores must be exactly those of one version). Reports the answers checked, wrong
answers (must be 0), each reader's resident memory over time (must stay flat) and search
latency (p50, p99). A script, not a timed test (docs/RELIABILITY.md):

    PYTHONPATH=build/python .venv/bin/python tools/soak.py --minutes 10
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import tempfile
import threading
import time

import numpy as np

import vecpack


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reader(path, queries, expected, seconds, threads, reopen_every, out):
    """One process: `threads` threads open and search; every answer is checked."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    stats = {"answers": 0, "wrong": 0, "by_version": [0, 0], "latency_us": [], "rss_kib": [], "errors": []}

    def work(seed):
        rng = random.Random(seed)
        table, uses = None, 0
        local_latency, answers, wrong, versions = [], 0, 0, [0, 0]
        while time.monotonic() < stop:
            if table is None or uses >= reopen_every:
                table, uses = vecpack.open(path), 0
            i = rng.randrange(len(queries))
            start = time.perf_counter()
            ids, scores = table.search(queries[i], k=10, threads=1)
            local_latency.append((time.perf_counter() - start) * 1e6)
            uses += 1
            answers += 1
            match = [v for v in (0, 1) if np.array_equal(ids, expected[v][0][i]) and np.array_equal(scores, expected[v][1][i])]
            if match:
                versions[match[0]] += 1
            else:
                wrong += 1
                with lock:
                    if len(stats["errors"]) < 5:
                        stats["errors"].append(f"query {i}: ids {ids.tolist()} match neither version")
        with lock:
            stats["answers"] += answers
            stats["wrong"] += wrong
            stats["by_version"][0] += versions[0]
            stats["by_version"][1] += versions[1]
            stats["latency_us"].extend(local_latency[:: max(1, len(local_latency) // 20000)])

    workers = [threading.Thread(target=work, args=(os.getpid() * 100 + t,)) for t in range(threads)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        stats["rss_kib"].append((round(seconds - (stop - time.monotonic()), 1), rss_kib()))
        time.sleep(min(10.0, max(0.5, seconds / 60)))
    for w in workers:
        w.join()
    stats["rss_kib"].append((round(seconds, 1), rss_kib()))
    with open(out, "w") as f:
        json.dump(stats, f)


def writer(path, versions, seconds, interval, out):
    """Replaces `path` with the other version every `interval` seconds: copy, fsync, rename."""
    stop = time.monotonic() + seconds
    replaced = 0
    while time.monotonic() < stop:
        time.sleep(interval)
        source = versions[(replaced + 1) % 2]
        temp = f"{path}.tmp-soak"
        with open(source, "rb") as src, open(temp, "wb") as dst:
            dst.write(src.read())
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(temp, path)
        replaced += 1
    with open(out, "w") as f:
        json.dump({"replaced": replaced}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--codec", default="int8")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between replacements")
    parser.add_argument("--reopen-every", type=int, default=50, help="searches per open table")
    args = parser.parse_args()
    seconds = args.minutes * 60

    work = tempfile.mkdtemp(prefix="vecpack-soak-")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    keys = [f"r{i}" for i in range(args.rows)]
    paths = [os.path.join(work, "a.vecpack"), os.path.join(work, "b.vecpack")]
    vecpack.compress(x, args.codec, keys=keys, metric="ip").save(paths[0])
    vecpack.compress(-x, args.codec, keys=keys, metric="ip").save(paths[1])
    queries = rng.normal(size=(256, args.dim)).astype(np.float32)
    expected = []
    for p in paths:
        # One query per call, as the readers search (a batch may round scores differently).
        table = vecpack.open(p)
        answers = [table.search(q, k=10, threads=1) for q in queries]
        expected.append((np.stack([a[0] for a in answers]), np.stack([a[1] for a in answers])))
    target = os.path.join(work, "table.vecpack")
    with open(paths[0], "rb") as src, open(target, "wb") as dst:
        dst.write(src.read())

    print(f"soak: {args.processes} processes x {args.threads} threads search {args.rows:,} x {args.dim} {args.codec} "
          f"for {args.minutes:g} min; the file is replaced every {args.interval:g} s", flush=True)
    ctx = mp.get_context("spawn")
    outs = [os.path.join(work, f"reader-{i}.json") for i in range(args.processes)]
    procs = [ctx.Process(target=reader, args=(target, queries, expected, seconds, args.threads, args.reopen_every, o))
             for o in outs]
    writer_out = os.path.join(work, "writer.json")
    procs.append(ctx.Process(target=writer, args=(target, paths, seconds, args.interval, writer_out)))
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]

    answers = wrong = 0
    by_version = [0, 0]
    latency = []
    print("\nresident memory of each reader (KiB) over time (s):")
    for i, o in enumerate(outs):
        with open(o) as f:
            s = json.load(f)
        answers += s["answers"]
        wrong += s["wrong"]
        by_version[0] += s["by_version"][0]
        by_version[1] += s["by_version"][1]
        latency += s["latency_us"]
        samples = s["rss_kib"]
        picks = [samples[j] for j in sorted({0, len(samples) // 4, len(samples) // 2, 3 * len(samples) // 4, len(samples) - 1})]
        print(f"  reader {i}: " + ", ".join(f"{t:g}s {kib:,}" for t, kib in picks)
              + f"  (max {max(k for _, k in samples):,})")
        for e in s["errors"]:
            print(f"    {e}")
    with open(writer_out) as f:
        replaced = json.load(f)["replaced"]
    latency = np.array(latency)
    print(f"\nanswers checked {answers:,} (version a {by_version[0]:,}, version b {by_version[1]:,}); wrong {wrong}; "
          f"file replaced {replaced} times")
    print(f"search latency: p50 {np.percentile(latency, 50):.0f} us, p99 {np.percentile(latency, 99):.0f} us "
          f"(k=10, one thread, {args.rows:,} rows)")
    if failed:
        print(f"processes failed: exit codes {failed}")
    raise SystemExit(1 if wrong or failed else 0)


if __name__ == "__main__":
    main()
