"""An n-gram pool fitted to GloVe (Table.fit_subwords): how well it predicts words it never saw.

    PYTHONPATH=build/python .venv/bin/python tools/bench/subword_bench.py \\
        [--glove /work/data-cache/glove.6B.100d.341k.txt] [--buckets 200000] [--held-out 5000] [--threads 2]

5,000 words (seeded, drawn uniformly from ranks 1,000 to 100,000, i.e. neither stop words nor
the long tail of rare tokens) are held out of the table; the pool is fitted to the other words;
each held-out word's vector is then predicted from its n-grams (Table["word"]) and compared
with its GloVe vector by cosine. Printed: mean and quartiles of that cosine, beside the cosine
of a baseline that answers every unknown word with the mean row; then the nearest neighbours
(in the full table) of a few made-up words.

--codecs 'subword:rows=50000,keep=20000;pq:m=25' also compresses the table (without the
held-out words) with each spec and prints its bytes per row (every parameter included), the
mean cosine of its rows to the true rows (for subword: of the rows it derives from n-grams), the
held-out words' cosine where the codec answers unseen words, and recall@10 of word neighbours:
1,000 query words drawn from ranks below 10,000 (R@10 frequent) and 1,000 from ranks 50,000 to
300,000 (R@10 rare), their true vectors searched in the compressed table, against the exact top
10 of the uncompressed one (the word itself left out).
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
    parser.add_argument("--codecs", default="", help="';'-separated codec specs to compress the table with")
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
    if args.codecs:
        compare_codecs(args, keys, x, keep, held)
    return 0


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def compare_codecs(args, keys, x, keep, held):
    words = [k for k, m in zip(keys, keep) if m]
    rows = x[keep]
    n = len(words)
    rng = np.random.default_rng(99)
    exact_table = vecpack.compress(rows, "f32")
    query_sets = []
    for low, high in ((0, 10000), (50000, min(300000, n))):
        queries = np.sort(rng.choice(np.arange(low, high), size=1000, replace=False))
        exact = exact_table.search(rows[queries], k=11, threads=args.threads)[0]
        query_sets.append((queries, [[i for i in r if i != q][:10] for q, r in zip(queries, exact)]))

    def recall(t, queries, truth):
        found = t.search(rows[queries], k=11, threads=args.threads)[0]
        hits = sum(len(set(tr) & set([i for i in f if i != q][:10])) for q, f, tr in zip(queries, found, truth))
        return hits / (10 * len(queries))

    print(f"\n{'codec':<44} {'B/row':>7} {'x f32':>6} {'cos rows':>9} {'cos held':>9} {'R@10 freq':>10} "
          f"{'R@10 rare':>10} {'fit s':>6}")
    for spec in [s.strip() for s in args.codecs.split(";") if s.strip()]:
        start = time.perf_counter()
        t = vecpack.compress(rows, spec, keys=words, train_size=0, threads=args.threads)
        seconds = time.perf_counter() - start
        info = t.info()
        stored = info["bytes"]["codes"] + info["bytes"]["codec_parameters"]
        decoded = np.asarray(t.vectors)
        kept = int(spec.split("keep=")[1].split(",")[0]) if "keep=" in spec else 0
        derived = cosines(decoded[kept:], rows[kept:]).mean()
        try:
            held_cos = f"{cosines(np.stack([t[keys[i]] for i in held]), x[held]).mean():9.3f}"
        except KeyError:
            held_cos = f"{'-':>9}"
        frequent, rare = (recall(t, queries, truth) for queries, truth in query_sets)
        print(f"{spec:<44} {stored / n:7.1f} {n * x.shape[1] * 4 / stored:6.1f} {derived:9.3f} {held_cos} "
              f"{frequent:10.3f} {rare:10.3f} {seconds:6.1f}")


if __name__ == "__main__":
    sys.exit(main())
