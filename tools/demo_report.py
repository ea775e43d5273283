"""Formats the demo's figures from `vecpack ... --json` output."""
import json
import os
import subprocess
import sys


def run_json(*args):
    return json.loads(subprocess.run(list(args), check=True, capture_output=True, text=True).stdout)


def sizes(vp, sample, files):
    print(f"  {'GloVe text, gzip':24} {os.path.getsize(sample):10} B")
    for label, path in files:
        i = run_json(vp, "inspect", "--json", path)
        print(f"  {label:24} {i['bytes']['file']:10} B   {i['bytes_per_vector']:6.1f} bytes/vector, "
              f"{i['compression_ratio']:.1f}x smaller than f32 rows")


def neighbours(vp, exact_file, packed_file, words):
    def search(path):
        return run_json(vp, "search", path, *words, "-k", "5", "--json")
    for e, p in zip(search(exact_file), search(packed_file)):
        print(f"  {e['query']}")
        for a, b in zip(e["neighbors"], p["neighbors"]):
            mark = "" if a["key"] == b["key"] else "  *"
            print(f"    {a['key']:14} {a['score']:.4f}   | {b['key']:14} {b['score']:.4f}{mark}")
    print("  (* where the compressed ranking differs)")


if __name__ == "__main__":
    what, vp = sys.argv[1], sys.argv[2]
    if what == "sizes":
        rest = sys.argv[4:]
        sizes(vp, sys.argv[3], list(zip(rest[::2], rest[1::2])))
    else:
        neighbours(vp, sys.argv[3], sys.argv[4], sys.argv[5:])
