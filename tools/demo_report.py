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


def range_table(markdown, labels):
    """The bench table cut to what the range shows: codec (labelled), bytes/vector, ratio, recall@10."""
    rows = [line.split("|")[1:-1] for line in markdown.splitlines() if line.startswith("| vecpack")]
    if len(rows) != len(labels):
        raise SystemExit(f"demo_report: {len(rows)} bench rows for {len(labels)} labels")
    print(f"  {'codec':36} {'bytes/vector':>12} {'vs f32':>7} {'recall@10':>10}")
    for label, cells in zip(labels, rows):
        size, ratio, recall = (cells[i].strip() for i in (2, 3, 7))
        print(f"  {label:36} {size:>12} {ratio:>7} {recall:>10}")


def neighbours(vp, exact_file, packed_files, words):
    def search(path):
        return run_json(vp, "search", path, *words, "-k", "5", "--json")
    columns = [search(exact_file)] + [search(p) for p in packed_files]
    for results in zip(*columns):
        print(f"  {results[0]['query']}")
        for row in zip(*(r["neighbors"] for r in results)):
            cells = [f"{row[0]['key']:14} {row[0]['score']:.4f}"]
            for b in row[1:]:
                mark = "*" if b["key"] != row[0]["key"] else " "
                cells.append(f"{b['key']:14} {b['score']:.4f}{mark}")
            print("    " + " | ".join(cells))
    print("  (* where a compressed ranking differs from the exact one)")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "sizes":
        rest = sys.argv[4:]
        sizes(sys.argv[2], sys.argv[3], list(zip(rest[::2], rest[1::2])))
    elif what == "range":
        range_table(sys.stdin.read(), sys.argv[2:])
    else:
        cut = sys.argv.index("--")
        neighbours(sys.argv[2], sys.argv[3], sys.argv[4:cut], sys.argv[cut + 1:])
