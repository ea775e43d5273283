"""recall@10 against bytes per vector for vecpack codecs and the libraries beside it, one PNG.

    .venv/bin/python tools/bench/plot.py RESULTS.json OUT.png [--title T]

RESULTS.json is the report `vecpack bench` writes: dataset, queries and a "results" list whose
rows carry "library" ("vecpack" or "faiss"), "spec", "bytes_per_vector" and "recall@10".
vecpack points are filled circles, FAISS points hollow squares, each labelled with its spec;
vecpack's Pareto front (no other vecpack point as small and as accurate) is joined by a step
line. Rows with an error or no recall are left out. The PNG is written atomically.

Exit codes: 0 written, 2 unreadable results or output path, 3 matplotlib not installed.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

VECPACK_COLOUR = "#1f77b4"
FAISS_COLOUR = "#d62728"
# Libraries measured beside vecpack: legend title, marker, colour.
PEER_STYLES = {
    "faiss": ("FAISS", "s", FAISS_COLOUR),
    "usearch": ("USearch", "^", "#2ca02c"),
    "scann": ("ScaNN", "D", "#9467bd"),
}
FRONT_COLOUR = "#ff9f1c"


def plottable_rows(results: list, library: str) -> list:
    """(bytes, recall, spec) for one library's rows that have both figures and no error."""
    points = []
    for row in results:
        if not isinstance(row, dict) or row.get("library") != library or row.get("error"):
            continue
        try:
            size, recall = float(row["bytes_per_vector"]), float(row["recall@10"])
        except (KeyError, TypeError, ValueError):  # missing, null or not a number
            continue
        if math.isfinite(size) and math.isfinite(recall) and size > 0:  # a log axis cannot place zero
            points.append((size, recall, str(row.get("spec", "?"))))
    return points


def pareto_front(points: list) -> list:
    """Points no other point dominates (as small or smaller and as accurate or better, one strictly)."""
    def dominates(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])
    front = [p for p in points if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda p: (p[0], -p[1]))


LABEL_FONT_SIZE = 7
# Candidate label positions (offset points from the marker), nearest first, tried until one is free.
LABEL_OFFSETS_ABOVE = [(6, 3), (6, 12), (6, -9), (6, 21), (6, -18), (6, 30), (6, -27)]
LABEL_OFFSETS_BELOW = [(6, -9), (6, -18), (6, 3), (6, -27), (6, 12), (6, -36), (6, 21)]


def place_labels(ax, labelled: list) -> None:
    """Annotate (points, colour, offsets) groups so labels of nearby markers do not overprint.

    Positions are compared in screen points once the axes limits are final; each label takes the
    first candidate offset whose approximate text box misses every label already placed.
    """
    points_per_pixel = 72.0 / ax.figure.dpi
    height = LABEL_FONT_SIZE * 1.1
    taken = []
    for points, colour, offsets in labelled:
        for size, recall, spec in points:
            px, py = ax.transData.transform((size, recall)) * points_per_pixel
            width = 0.6 * LABEL_FONT_SIZE * len(spec)
            chosen = offsets[0]
            for dx, dy in offsets:
                box = (px + dx, py + dy, px + dx + width, py + dy + height)
                if not any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in taken):
                    chosen = (dx, dy)
                    break
            taken.append((px + chosen[0], py + chosen[1], px + chosen[0] + width, py + chosen[1] + height))
            ax.annotate(spec, (size, recall), xytext=chosen, textcoords="offset points", fontsize=LABEL_FONT_SIZE,
                        color=colour, annotation_clip=False)


def default_title(report: dict) -> str:
    dataset = Path(str(report.get("dataset", "unknown dataset"))).name
    for suffix in (".hdf5", ".h5"):
        if dataset.endswith(suffix):
            dataset = dataset[: -len(suffix)]
    return f"recall@10 vs bytes per vector — {dataset}, {report.get('queries', '?')} queries"


def draw(report: dict, out_path: str, title: str) -> int:
    import matplotlib
    matplotlib.use("Agg")  # no display needed; also the smallest dependency surface
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    results = report.get("results") or []
    vecpack_points = plottable_rows(results, "vecpack")
    peer_points = [(plottable_rows(results, library), legend_name, marker, colour)
                   for library, (legend_name, marker, colour) in PEER_STYLES.items()]
    faiss_points = [p for points, *_ in peer_points for p in points]
    front = pareto_front(vecpack_points)

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    if front:
        # The highlight sits under the markers so they stay readable on top of it.
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=FRONT_COLOUR,
                linewidth=2.5, alpha=0.9, zorder=1, label="vecpack Pareto front")
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=180, color=FRONT_COLOUR, alpha=0.35,
                   linewidths=0, zorder=2, clip_on=False)
    if vecpack_points:
        ax.scatter([p[0] for p in vecpack_points], [p[1] for p in vecpack_points], marker="o", s=36,
                   color=VECPACK_COLOUR, zorder=3, clip_on=False, label="vecpack")
    for points, legend_name, marker, colour in peer_points:
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, s=36,
                       facecolors="none", edgecolors=colour, linewidths=1.4, zorder=4, clip_on=False,
                       label=legend_name)

    ax.set_xscale("log")
    sizes = [p[0] for p in vecpack_points + faiss_points]
    if sizes:
        ax.set_xlim(min(sizes) / 1.3, max(sizes) * 1.6)  # room on the right for the labels
    # Byte counts read best as plain numbers on powers of two.
    ax.xaxis.set_major_locator(LogLocator(base=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    # Zoom to where the points are: codecs near recall 1 are indistinguishable on 0..1.
    recalls = [p[1] for p in vecpack_points + faiss_points]
    ax.set_ylim(max(0.0, math.floor((min(recalls) - 0.02) * 20) / 20) if recalls else 0.0, 1.0)
    ax.set_xlabel("bytes per vector (log scale)")
    ax.set_ylabel("recall@10")
    ax.set_title(title, fontsize=10, pad=12)  # clear of labels on recall 1.0
    ax.grid(True, which="major", alpha=0.3)
    if sizes:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no results to plot", transform=ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    # Labels go on last: their placement needs the final axes limits and layout.
    place_labels(ax, [(vecpack_points, VECPACK_COLOUR, LABEL_OFFSETS_ABOVE)] +
                 [(points, colour, LABEL_OFFSETS_BELOW) for points, _, _, colour in peer_points])

    # Readers of OUT.png never see a half-written file: write beside it, then rename over it.
    tmp_path = out_path + ".tmp"
    try:
        fig.savefig(tmp_path, format="png", dpi=100)
        os.replace(tmp_path, out_path)
    except OSError as error:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        print(f"plot: cannot write {out_path}: {error}", file=sys.stderr)
        return 2
    finally:
        plt.close(fig)
    if not sizes:
        print("plot: no row had bytes_per_vector and recall@10; wrote an empty chart", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="results JSON from vecpack bench")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--title", help="chart title (default: recall@10 vs bytes per vector — dataset, queries)")
    args = ap.parse_args()
    try:
        import matplotlib  # noqa: F401  (checked before any work so the exit code is reliable)
    except ImportError:
        print("plot: matplotlib is not installed: .venv/bin/pip install matplotlib", file=sys.stderr)
        return 3
    try:
        with open(args.results, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as error:
        print(f"plot: cannot read {args.results}: {error}", file=sys.stderr)
        return 2
    if not isinstance(report, dict):
        print(f"plot: {args.results}: expected a JSON object with a \"results\" list", file=sys.stderr)
        return 2
    return draw(report, args.out, args.title or default_title(report))


if __name__ == "__main__":
    sys.exit(main())
