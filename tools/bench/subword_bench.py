"""An n-gram pool fitted to GloVe (Table.fit_subwords): how well it predicts words it never saw.

    PYTHONPATH=build/python .venv/bin/python tools/bench/subword_bench.py \\
        [--glove /work/data-cache/glove.6B.100d.341k.txt] [--buckets 200000] [--held-out 5000] [--threads 2]

5,000 words (seeded, drawn uniformly from ranks 1,000 to 100,000, i.e. neither stop words nor
the long tail of rare tokens) are held out of the table; the pool is fitted to the other words;
each held-out word's vector is then predicted from its n-grams (Table["word"]) and compared
with its GloVe vector by cosine. Printed: mean and quartiles of that cosine, beside the cosine
of a baseline that answers every unknown word with the mean row; then the nearest neighbours
(in the full table) of a few made-up words.
"""
import argparse
import sys
import time

import numpy as np

import vecpack

MADE_UP = ["reembedding", "microplastics", "ungoogleable", "hyperlocalism", "retweetable", "unfriendliest"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glove", default="/work/data-cache/glove.6B.100d.341k.txt")
    parser.add_argument("--buckets", type=int, default=200000)
    parser.add_argument("--held-out", type=int, default=5000)
    parser.add_argument("--minn", type=int, default=3)
    parser.add_argument("--maxn", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    full = vecpack.read(args.glove)
    keys = list(full.keys)
    x = np.asarray(full.vectors, dtype=np.float32)
    rng = np.random.default_rng(1234)
    held = np.sort(rng.choice(np.arange(1000, 100000), size=args.held_out, replace=False))
    keep = np.ones(len(keys), dtype=bool)
    keep[held] = False
    table = vecpack.compress(x[keep], "f32", keys=[k for k, m in zip(keys, keep) if m])
    start = time.perf_counter()
    fitted = table.fit_subwords(buckets=args.buckets, minn=args.minn, maxn=args.maxn, threads=args.threads)
    seconds = time.perf_counter() - start
    predicted = np.stack([fitted[keys[i]] for i in held])
    truth = x[held]

    def cosines(a, b):
        return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)

    c = cosines(predicted, truth)
    baseline = cosines(np.broadcast_to(x[keep].mean(axis=0), truth.shape), truth)
    print(f"GloVe {len(keys)} x {x.shape[1]}: pool of {args.buckets} rows, n-grams {args.minn}..{args.maxn}, "
          f"fitted to {keep.sum()} words in {seconds:.1f} s ({args.threads} threads)")
    print(f"held-out words ({args.held_out}): mean cosine {c.mean():.3f} (quartiles {np.percentile(c, 25):.3f} / "
          f"{np.median(c):.3f} / {np.percentile(c, 75):.3f}); mean row as the answer: {baseline.mean():.3f}")
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for word in MADE_UP:
        if word in full:
            continue
        v = fitted[word]
        scores = unit @ (v / (np.linalg.norm(v) + 1e-30))
        top = np.argsort(-scores)[:6]
        print(f"  {word}: " + ", ".join(keys[i] for i in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
