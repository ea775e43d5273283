"""Reading a word-vector text file: `vecpack convert` beside gensim, in one run.

    python tools/bench/convert_speed.py GLOVE.txt [--vecpack build/vecpack] [--runs 3]
        [--format glove] [--no-gensim]

Measures wall time and peak resident memory of each reader in its own process (so one does
not inherit the other's memory), repeats `--runs` times and prints the median of each and the
ratio. gensim reads with load_word2vec_format(no_header=True) for GloVe files (header-less),
which is what its users call; vecpack converts to a .vecpack f32 file, which includes writing
it to disk (gensim only builds its arrays in memory).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENSIM_CHILD = r"""
import sys, time
from gensim.models import KeyedVectors
start = time.perf_counter()
kv = KeyedVectors.load_word2vec_format(sys.argv[1], binary=False, no_header=sys.argv[2] == "glove")
print(time.perf_counter() - start, len(kv), kv.vector_size)
"""


def run_measured(cmd):
    """Wall seconds and peak RSS (bytes) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    # Outputs are a line or two, so waiting before reading the pipes cannot block the child.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    return seconds, usage.ru_maxrss * 1024, out, err


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("--vecpack", default=str(Path(__file__).resolve().parents[2] / "build" / "vecpack"))
    parser.add_argument("--format", default="glove", choices=["glove", "word2vec"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-gensim", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if not args.input.is_file():
        sys.exit(f"convert_speed: {args.input} does not exist (../shared/data/glove100.sh builds the GloVe set)")

    have_gensim = False
    if not args.no_gensim:
        have_gensim = subprocess.run([sys.executable, "-c", "import gensim"], capture_output=True).returncode == 0
        if not have_gensim:
            print("convert_speed: gensim is not installed (pip install gensim); measuring vecpack alone", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="vecpack-convert-"))
    out = tmp / "out.vecpack"
    results = {"vecpack": {"seconds": [], "peak_bytes": []}, "gensim": {"seconds": [], "peak_bytes": []}}
    try:
        for run in range(args.runs):
            seconds, peak, _, err = run_measured([args.vecpack, "-q", "convert", "--from", args.format, str(args.input), str(out)])
            if not out.is_file():
                sys.exit(f"convert_speed: vecpack convert failed:\n{err}")
            results["vecpack"]["seconds"].append(seconds)
            results["vecpack"]["peak_bytes"].append(peak)
            output_bytes = out.stat().st_size
            out.unlink()
            if have_gensim:
                seconds, peak, stdout, err = run_measured([sys.executable, "-c", GENSIM_CHILD, str(args.input), args.format])
                if not stdout.strip():
                    sys.exit(f"convert_speed: gensim failed:\n{err}")
                results["gensim"]["seconds"].append(seconds)
                results["gensim"]["peak_bytes"].append(peak)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report = {
        "input": str(args.input),
        "input_bytes": args.input.stat().st_size,
        "output_bytes": output_bytes,
        "runs": args.runs,
        "vecpack_seconds": median(results["vecpack"]["seconds"]),
        "vecpack_peak_bytes": median(results["vecpack"]["peak_bytes"]),
    }
    if have_gensim:
        report["gensim_seconds"] = median(results["gensim"]["seconds"])
        report["gensim_peak_bytes"] = median(results["gensim"]["peak_bytes"])
        report["speedup"] = report["gensim_seconds"] / report["vecpack_seconds"]
    if args.json:
        print(json.dumps(report, indent=1))
        return
    mib = 1 << 20
    print(f"Reading {args.input.name} ({report['input_bytes'] / mib:.0f} MiB), median of {args.runs} runs\n")
    print("| reader | seconds | MB/s | peak RSS MiB | peak / output |")
    print("|---|---|---|---|---|")
    rows = [("vecpack convert -> .vecpack f32", report["vecpack_seconds"], report["vecpack_peak_bytes"])]
    if have_gensim:
        rows.append(("gensim load_word2vec_format", report["gensim_seconds"], report["gensim_peak_bytes"]))
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.2f} | {report['input_bytes'] / mib / seconds:.0f} | {peak / mib:.0f} | "
              f"{peak / report['output_bytes']:.2f} |")
    if have_gensim:
        print(f"\nvecpack is {report['speedup']:.1f}x faster than gensim")


if __name__ == "__main__":
    main()
