#!/usr/bin/env python3
"""Search speed of two vecpack builds on the same files, measured in one run.

    compare_builds.py OLD_VECPACK NEW_VECPACK DATASET.hdf5 [--codecs 'f32;int8;...'] [--rounds 3]

Compresses the dataset's train rows once per codec (with NEW; the file format is the same),
then runs `vecpack eval --json` with each build in turn, alternating OLD and NEW every round so
that both see the same machine noise, at 1 and 2 threads. Prints the median queries/s of each
build, their ratio (NEW / OLD) and the recall@10 of both (which must be equal).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

DEFAULT_CODECS = "f32;int8;pq:m=25;pq:m=50,nbits=4;binary;pq:m=25+int8@100"


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("dataset")
    p.add_argument("--codecs", default=DEFAULT_CODECS, help="';'-separated specs; SPEC+RERANK@N adds a rerank section")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--work", default=None, help="folder for the compressed files (default: a temporary one)")
    a = p.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="vecpack-compare-")
    os.makedirs(work, exist_ok=True)
    rows = []
    for entry in a.codecs.split(";"):
        spec, rerank = entry, None
        if "+" in entry:
            spec, tail = entry.split("+", 1)
            rerank_spec, depth = tail.split("@")
            rerank = (rerank_spec, int(depth))
        name = "".join(c if c.isalnum() else "_" for c in entry) + ".vecpack"
        path = os.path.join(work, name)
        if not os.path.exists(path):
            cmd = [a.new, "compress", a.dataset, "-c", spec, "-o", path]
            if rerank:
                cmd += ["--rerank", rerank[0]]
            run(cmd)
        for threads in a.threads.split(","):
            qps = {"old": [], "new": []}
            recall = {}
            for _ in range(a.rounds):
                for which, binary in (("old", a.old), ("new", a.new)):
                    cmd = [binary, "eval", path, "--dataset", a.dataset, "--threads", threads, "--json",
                           "--queries", str(a.queries)]
                    if rerank:
                        cmd += ["--rerank", str(rerank[1])]
                    j = json.loads(run(cmd))
                    qps[which].append(j["qps"])
                    recall[which] = j["recall@10"]
            old, new = statistics.median(qps["old"]), statistics.median(qps["new"])
            rows.append((entry, threads, old, new, new / old, recall["old"], recall["new"]))
            print(f"{entry:24s} threads={threads}  old {old:9.0f} q/s  new {new:9.0f} q/s  new/old {new / old:5.2f}"
                  f"  recall@10 {recall['old']:.4f} / {recall['new']:.4f}", flush=True)
    print()
    print("| codec | threads | old q/s | new q/s | new/old | recall@10 old / new |")
    print("|---|---|---|---|---|---|")
    for entry, threads, old, new, ratio, r_old, r_new in rows:
        print(f"| `{entry}` | {threads} | {old:.0f} | {new:.0f} | {ratio:.2f} | {r_old:.4f} / {r_new:.4f} |")
    if any(r[5] != r[6] for r in rows):
        print("recall differs between the builds", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
