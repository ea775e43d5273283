"""Tables that change, beside FAISS: filtered search, add and delete throughput, and search speed
as delta files pile up, all measured in one invocation on an ann-benchmarks file.

    PYTHONPATH=build/python .venv/bin/python tools/bench/changes_bench.py \\
        [--dataset glove-100-angular.hdf5] [--queries 1000] [--runs 3] [--seed 1] [--base-rows 300000] \\
        [--parts filter,add,delete,deltas] [--workdir /tmp] [--keep]

Angular data: train rows and queries are scaled to unit length; vecpack tables use metric 'cos',
FAISS indexes inner product. Every search runs on one thread (vecpack search(threads=1), FAISS
omp_set_num_threads(1)) with k=10 over the first --queries test queries, as one batch per call;
a timed figure is the median of --runs timed calls after one warm-up call, whose answer gives
the recall. Builds (training, encoding) are not timed.

1. filter: queries/s and recall@10 unfiltered and with a seeded random 1% / 10% / 50% of row ids
   allowed (vecpack search(allow=ids); FAISS SearchParameters(sel=...)). Recall is against the
   exact top-10 by inner product among the allowed unit rows (numpy), unfiltered against the
   exact top-10 over all rows. vecpack: int8 flat; pq:m=50,nbits=4 with int8 rerank rows
   searched with rerank=50; ivf:lists=1024/pq:m=50,nbits=4 with int8 rerank rows, nprobe=32,
   rerank=50. FAISS: IndexFlatIP (exact) and "IVF1024,PQ50x4fs,RFlat" (nprobe=32, k_factor=5:
   the same shortlist of 50, rescored with float32 rows instead of int8). FAISS is timed with
   IDSelectorBitmap (np.packbits(mask, bitorder='little')) and with IDSelectorBatch; the main
   table shows the faster, a second table both. Making the selector (mask, bits, hash set) is
   inside the timed call, as vecpack turns its id array into a bitmap inside search(). FAISS's
   flat search with a selector never uses BLAS; its unfiltered BLAS speed is printed below.
2. add: vecpack tables of the first 300,000 rows (int8; pq:m=50,nbits=4 + int8 rerank; binary)
   saved, opened, and the remaining rows added in batches of 1,000 (one generation each) and,
   on a fresh copy, as one batch of 10,000; the same for the table in memory (a fresh
   compress(rows, base) each run). FAISS index.add of the same rows into a clone of a trained
   index holding the first 300,000: IndexScalarQuantizer(QT_8bit), IndexPQFastScan(100, 50, 4)
   and IndexBinaryFlat(128) (the sign codes of x - training mean, packed in numpy inside the
   timed region, as vecpack encodes inside add()). rows/s = rows added / median seconds.
   Added rows are checked: a search on the changed table must equal one on the whole table
   encoded at once with the base's codec (compress(all_rows, base)); with a rerank section only
   the first stage must (compress() retrains the rerank codec, so rerank=50 may differ slightly).
3. delete: vecpack delete() of 1,000 and of 10,000 seeded random row ids on the saved int8 table
   of all rows (a fresh copy each run; also in memory), against FAISS remove_ids with an
   IDSelectorBatch on an IndexScalarQuantizer(QT_8bit) holding the same rows (a clone each run;
   FAISS renumbers the rows that follow, vecpack keeps ids until compact()).
4. deltas: the saved pq:m=50,nbits=4 + int8 table of the first 300,000 rows, the rest added in
   1, 10 and 100 batches (three copies), reopened, and searched (rerank=50): queries/s and
   recall@10 against the file's neighbours; then compact() (timed), reopened and searched again.
   A reference row searches the whole file encoded at once with the base's codec (its int8 rerank
   codec retrained by compress()).
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time

import h5py
import numpy as np

import vecpack

K = 10
SELECTIVITIES = (0.01, 0.10, 0.50)
NPROBE = 32
SHORTLIST = 50  # vecpack rerank depth; FAISS k_factor = SHORTLIST / K


def load(dataset, queries):
    with h5py.File(dataset, "r") as f:
        x = np.ascontiguousarray(f["train"][:], dtype=np.float32)
        q = np.ascontiguousarray(f["test"][:queries], dtype=np.float32)
        truth = np.asarray(f["neighbors"][:queries, :K], dtype=np.int64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    return x, q, truth


def exact_topk(x, q, allowed=None, block=100):
    """Ids of the K largest inner products among the allowed rows (all rows when None)."""
    sub = x if allowed is None else x[allowed]
    out = np.empty((len(q), K), dtype=np.int64)
    for s in range(0, len(q), block):
        scores = q[s:s + block] @ sub.T
        part = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        top = np.take_along_axis(part, order, axis=1)
        out[s:s + block] = top if allowed is None else allowed[top]
    return out


def recall(found, truth):
    return float(np.mean([len(set(f[:K].tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def timed(fn, runs):
    """One warm-up call (its result is returned), then the median seconds of `runs` calls."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fresh_runs(prepare, work, runs):
    """Median seconds of `runs` calls of work(state) on a fresh state from prepare() each time."""
    times = []
    state = None
    for _ in range(runs):
        state = prepare()
        start = time.perf_counter()
        work(state)
        times.append(time.perf_counter() - start)
    return statistics.median(times), state


def copy_table(src, dst):
    remove_table(dst)
    shutil.copyfile(src, dst)
    return dst


def remove_table(path):
    if os.path.exists(path):
        os.remove(path)
    if os.path.isdir(path + ".changes"):
        shutil.rmtree(path + ".changes")


def fmt_rate(v):
    return f"{v:,.0f}"


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------------------------
# 1. Filtered search


def part_filter(args, x, q, faiss):
    n = len(x)
    rng = np.random.default_rng(args.seed)
    allowed = {s: np.sort(rng.choice(n, size=round(s * n), replace=False)).astype(np.int64) for s in SELECTIVITIES}
    start = time.perf_counter()
    truth = {None: exact_topk(x, q)}
    for s, ids in allowed.items():
        truth[s] = exact_topk(x, q, ids)
    print(f"(exact ground truth: {time.perf_counter() - start:.1f} s)", flush=True)

    columns = (None,) + SELECTIVITIES
    rows = []  # (library, index, {sel: (qps, recall, note)})
    violations = []

    def vecpack_row(label, table, **kw):
        cells = {}
        for s in columns:
            extra = {} if s is None else {"allow": allowed[s]}
            secs, (ids, _) = timed(lambda: table.search(q, k=K, threads=1, **kw, **extra), args.runs)
            if s is not None:
                outside = ~np.isin(ids, allowed[s]) & (ids >= 0)
                if outside.any():
                    violations.append(f"vecpack {label} at {s:.0%}: {int(outside.sum())} ids outside the allowed set")
            cells[s] = (len(q) / secs, recall(ids, truth[s]), "")
        rows.append(("vecpack", label, cells))
        print(f"  done: vecpack {label}", flush=True)

    t0 = time.perf_counter()
    table = vecpack.compress(x, "int8", metric="cos")
    print(f"  built vecpack int8 in {time.perf_counter() - t0:.1f} s", flush=True)
    vecpack_row("int8 flat", table)
    del table

    t0 = time.perf_counter()
    table = vecpack.compress(x, "pq:m=50,nbits=4", metric="cos", rerank="int8")
    print(f"  built vecpack pq50x4+int8 in {time.perf_counter() - t0:.1f} s", flush=True)
    vecpack_row(f"pq50x4 + int8@{SHORTLIST} flat", table, rerank=SHORTLIST)
    del table

    t0 = time.perf_counter()
    table = vecpack.compress(x, "ivf:lists=1024/pq:m=50,nbits=4", metric="cos", rerank="int8")
    print(f"  built vecpack ivf1024/pq50x4+int8 in {time.perf_counter() - t0:.1f} s", flush=True)
    vecpack_row(f"ivf1024/pq50x4 + int8@{SHORTLIST}, nprobe={NPROBE}", table, rerank=SHORTLIST, nprobe=NPROBE)
    del table

    selector_rows = []  # (index, sel, bitmap qps, batch qps)

    def faiss_row(label, index, make_params):
        cells = {}
        for s in columns:
            if s is None:
                def run_unfiltered():
                    params, refs = make_params(None)
                    return index.search(q, K, params=params)
                secs, (_, ids) = timed(run_unfiltered, args.runs)
                cells[s] = (len(q) / secs, recall(ids, truth[s]), "")
                continue
            found = {}
            for kind in ("bitmap", "batch"):
                def run(kind=kind):
                    if kind == "bitmap":
                        mask = np.zeros(n, dtype=bool)
                        mask[allowed[s]] = True
                        bits = np.packbits(mask, bitorder="little")
                        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
                    else:
                        bits = None
                        sel = faiss.IDSelectorBatch(allowed[s])
                    params, refs = make_params(sel)
                    result = index.search(q, K, params=params)
                    del bits, sel, params, refs  # the selector and its bits outlive the search
                    return result
                secs, (_, ids) = timed(run, args.runs)
                outside = ~np.isin(ids, allowed[s]) & (ids >= 0)
                if outside.any():
                    violations.append(f"faiss {label} {kind} at {s:.0%}: {int(outside.sum())} ids outside")
                found[kind] = (len(q) / secs, recall(ids, truth[s]))
            best = max(found, key=lambda kind: found[kind][0])
            cells[s] = (found[best][0], found[best][1], best)
            selector_rows.append((label, s, found["bitmap"], found["batch"]))
        rows.append(("faiss", label, cells))
        print(f"  done: faiss {label}", flush=True)

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    faiss_row("IndexFlatIP (exact)", flat,
              lambda sel: (None, None) if sel is None else (faiss.SearchParameters(sel=sel), None))
    # FAISS scans without BLAS when a batch has fewer queries than distance_compute_blas_threshold
    # (and always with a selector); this install's default is printed, and the unfiltered BLAS path
    # (threshold 20, the classic default) measured beside it.
    default_threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 20
    blas_secs, (_, blas_ids) = timed(lambda: flat.search(q, K), args.runs)
    faiss.cvar.distance_compute_blas_threshold = default_threshold
    blas_note = (f"FAISS IndexFlatIP unfiltered through BLAS (distance_compute_blas_threshold=20; this install's default "
                 f"is {default_threshold}, so the table's unfiltered row used the scalar scan): "
                 f"{fmt_rate(len(q) / blas_secs)} q/s, recall {recall(blas_ids, truth[None]):.4f}")
    del flat

    t0 = time.perf_counter()
    ivf = faiss.index_factory(x.shape[1], "IVF1024,PQ50x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(x)
    ivf.add(x)
    print(f"  built faiss IVF1024,PQ50x4fs,RFlat in {time.perf_counter() - t0:.1f} s (1 thread)", flush=True)

    def ivf_params(sel):
        base = faiss.SearchParametersIVF(nprobe=NPROBE) if sel is None else faiss.SearchParametersIVF(sel=sel, nprobe=NPROBE)
        params = faiss.IndexRefineSearchParameters(k_factor=SHORTLIST / K, base_index_params=base)
        return params, base  # the caller keeps base (and sel) alive until the search is done

    faiss_row(f"IVF1024,PQ50x4fs,RFlat nprobe={NPROBE} k_factor={SHORTLIST // K}", ivf, ivf_params)
    del ivf

    print()
    print(f"### 1. Filtered search: queries/s (1 thread, {len(q)} queries, k={K}) and recall@10 vs exact filtered top-10")
    print()
    head = ["library", "index", "unfiltered q/s", "recall"]
    for s in SELECTIVITIES:
        head += [f"{s:.0%} q/s", "recall"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for lib, label, cells in rows:
        out = [lib, label]
        for s in columns:
            qps, rec, note = cells[s]
            out += [fmt_rate(qps) + (f" ({note})" if note else ""), f"{rec:.4f}"]
        print("| " + " | ".join(out) + " |")
    print()
    print("FAISS selectors (queries/s / recall@10; the faster one is in the table above):")
    print()
    print("| faiss index | allowed | IDSelectorBitmap | IDSelectorBatch |")
    print("|---|---|---|---|")
    for label, s, bitmap, batch in selector_rows:
        print(f"| {label} | {s:.0%} | {fmt_rate(bitmap[0])} / {bitmap[1]:.4f} | {fmt_rate(batch[0])} / {batch[1]:.4f} |")
    print()
    print(blas_note)
    if violations:
        print("\nFILTER VIOLATIONS:\n" + "\n".join(violations))
    print(flush=True)


# ---------------------------------------------------------------------------------------------
# 2. Add throughput


ADD_SPECS = (("int8", "int8", None), ("pq50x4+int8", "pq:m=50,nbits=4", "int8"), ("binary", "binary", None))


def part_add(args, x, q, faiss, workdir):
    base_rows, rest = x[:args.base_rows], x[args.base_rows:]
    batches = [rest[i:i + 1000] for i in range(0, len(rest), 1000)]
    one = rest[:10_000]
    results = []
    checks = []
    for name, spec, rerank in ADD_SPECS:
        base = vecpack.compress(base_rows, spec, metric="cos", rerank=rerank)
        base_path = os.path.join(workdir, f"add-{name}.vecpack")
        base.save(base_path)
        run_path = os.path.join(workdir, f"add-{name}-run.vecpack")
        search_kw = {"rerank": SHORTLIST} if rerank else {}

        def add_all(table):
            for b in batches:
                table.add(b)

        def on_disk():
            return vecpack.open(copy_table(base_path, run_path))

        def in_memory():
            return vecpack.compress(base_rows, base, rerank=rerank)

        disk_many, changed = fresh_runs(on_disk, add_all, args.runs)
        generation = changed.info()["changes"]["generation"]
        assert len(changed) == len(x), (len(changed), len(x))
        # Check: the changed table (reopened) answers as the whole table encoded at once.
        del changed
        # The first-stage codes must match exactly; a rerank codec is retrained by compress(), so
        # the rerank check is only indicative.
        reopened = vecpack.open(run_path)
        whole = vecpack.compress(x, base, rerank=rerank)
        for kw in ({}, search_kw) if search_kw else ({},):
            got = reopened.search(q[:100], k=K, threads=1, **kw)
            want = whole.search(q[:100], k=K, threads=1, **kw)
            same = float(np.mean((got[0] == want[0]).all(axis=1)))
            checks.append((name + (f" rerank={kw['rerank']}" if kw else ""), same, float(np.max(np.abs(got[1] - want[1])))))
        del reopened, whole
        disk_one, _ = fresh_runs(on_disk, lambda t: t.add(one), args.runs)
        remove_table(run_path)
        mem_many, _ = fresh_runs(in_memory, add_all, args.runs)
        mem_one, _ = fresh_runs(in_memory, lambda t: t.add(one), args.runs)
        results.append(("vecpack", f"{spec}" + (f" + {rerank} rerank" if rerank else ""),
                        len(rest) / disk_many, generation, len(one) / disk_one,
                        len(rest) / mem_many, len(one) / mem_one))
        remove_table(base_path)
        print(f"  done: vecpack add {name}", flush=True)

    # FAISS peers: a clone of a trained index holding the base rows, timed index.add.
    d = x.shape[1]
    sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq.train(base_rows)
    sq.add(base_rows)
    pq = faiss.IndexPQFastScan(d, 50, 4, faiss.METRIC_INNER_PRODUCT)
    sample = base_rows[np.random.default_rng(args.seed).choice(len(base_rows), min(100_000, len(base_rows)), replace=False)]
    pq.train(sample)
    pq.add(base_rows)
    code_bytes = (d + 63) // 64 * 8
    mean = base_rows.mean(axis=0, dtype=np.float64).astype(np.float32)

    def pack(rows):
        bits = rows - mean > 0
        padded = np.zeros((len(rows), code_bytes * 8), dtype=bool)
        padded[:, :d] = bits
        return np.packbits(padded, axis=1, bitorder="little")

    binary = faiss.IndexBinaryFlat(code_bytes * 8)
    binary.add(pack(base_rows))
    peers = (
        ("IndexScalarQuantizer(QT_8bit)", sq, faiss.clone_index, lambda rows: rows),
        ("IndexPQFastScan(100, 50, 4)", pq, faiss.clone_index, lambda rows: rows),
        (f"IndexBinaryFlat({code_bytes * 8}), numpy packing inside", binary, faiss.clone_binary_index, pack),
    )
    for label, index, clone, encode in peers:
        def add_all(idx, encode=encode):
            for b in batches:
                idx.add(encode(b))
        many, _ = fresh_runs(lambda: clone(index), add_all, args.runs)
        single, _ = fresh_runs(lambda: clone(index), lambda idx: idx.add(encode(one)), args.runs)
        results.append(("faiss", label, len(rest) / many, None, len(one) / single, None, None))
    codes_one = pack(one)
    binary_only, _ = fresh_runs(lambda: faiss.clone_binary_index(binary), lambda idx: idx.add(codes_one), args.runs)

    print()
    print(f"### 2. Add throughput (rows/s, median of {args.runs}): {len(rest):,} rows onto {args.base_rows:,} "
          f"in {len(batches)} batches of <=1,000, and one batch of {len(one):,}")
    print()
    print("| library | index | on disk, 1,000-row batches | generations | on disk, 1 x 10,000 | in memory, 1,000-row batches | in memory, 1 x 10,000 |")
    print("|---|---|---|---|---|---|---|")
    for lib, label, many, gens, single, mmany, msingle in results:
        if lib == "vecpack":
            print(f"| {lib} | {label} | {fmt_rate(many)} | {gens} | {fmt_rate(single)} | {fmt_rate(mmany)} | {fmt_rate(msingle)} |")
        else:
            print(f"| {lib} | {label} | - | - | - | {fmt_rate(many)} | {fmt_rate(single)} |")
    print(f"\nFAISS IndexBinaryFlat add of 10,000 codes already packed: {fmt_rate(len(one) / binary_only)} rows/s")
    print("\nCheck (first 100 queries): changed table vs the whole file encoded at once with the base's codec")
    for name, same, max_diff in checks:
        print(f"  {name}: identical id lists {same:.2%}, max |score difference| {max_diff:.3g}")
    print(flush=True)


# ---------------------------------------------------------------------------------------------
# 3. Delete cost


def part_delete(args, x, q, faiss, workdir):
    n = len(x)
    rng = np.random.default_rng(args.seed + 1)
    sets = {c: rng.choice(n, size=c, replace=False).astype(np.int64) for c in (1_000, 10_000)}
    table = vecpack.compress(x, "int8", metric="cos")
    base_path = os.path.join(workdir, "delete-int8.vecpack")
    table.save(base_path)
    run_path = os.path.join(workdir, "delete-int8-run.vecpack")
    sq = faiss.IndexScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq.train(x)
    sq.add(x)
    results = []
    problems = []
    for count, ids in sets.items():
        disk, changed = fresh_runs(lambda: vecpack.open(copy_table(base_path, run_path)), lambda t: t.delete(ids), args.runs)
        del changed
        reopened = vecpack.open(run_path)
        if reopened.deleted_rows != count:
            problems.append(f"on disk, {count}: deleted_rows {reopened.deleted_rows}")
        found = reopened.search(q[:100], k=K, threads=1)[0]
        if np.isin(found, ids).any():
            problems.append(f"on disk, {count}: search returned deleted rows")
        del reopened
        remove_table(run_path)
        mem, _ = fresh_runs(lambda: vecpack.compress(x, table), lambda t: t.delete(ids), args.runs)
        fs, after = fresh_runs(lambda: faiss.clone_index(sq), lambda idx: idx.remove_ids(faiss.IDSelectorBatch(ids)), args.runs)
        if after.ntotal != n - count:
            problems.append(f"faiss {count}: ntotal {after.ntotal}")
        results.append((count, disk, mem, fs))
    remove_table(base_path)

    print()
    print(f"### 3. Delete cost on the {n:,}-row int8 table (seconds, median of {args.runs}; ids/s in brackets)")
    print()
    print("| ids deleted | vecpack on disk delete() | vecpack in memory delete() | FAISS SQ8 remove_ids(IDSelectorBatch) |")
    print("|---|---|---|---|")
    for count, disk, mem, fs in results:
        print(f"| {count:,} | {disk * 1e3:.2f} ms ({fmt_rate(count / disk)}) | {mem * 1e3:.2f} ms ({fmt_rate(count / mem)}) "
              f"| {fs * 1e3:.2f} ms ({fmt_rate(count / fs)}) |")
    if problems:
        print("\nDELETE PROBLEMS:\n" + "\n".join(problems))
    print(flush=True)


# ---------------------------------------------------------------------------------------------
# 4. Search as deltas grow


def part_deltas(args, x, q, truth, workdir):
    """Search speed of a flat and an ivf table as adds pile up deltas, and after compaction."""
    base_rows, rest = x[:args.base_rows], x[args.base_rows:]
    for spec, nprobe in (("pq:m=50,nbits=4", 0), ("ivf:lists=1024/pq:m=50,nbits=4", 32)):
        base = vecpack.compress(base_rows, spec, metric="cos", rerank="int8")
        base_path = os.path.join(workdir, "deltas-base.vecpack")
        base.save(base_path)

        def measure(table):
            secs, (ids, _) = timed(lambda: table.search(q, k=K, threads=1, rerank=SHORTLIST, nprobe=nprobe), args.runs)
            return len(q) / secs, recall(ids, truth)

        rows = []
        whole_path = os.path.join(workdir, "deltas-whole.vecpack")
        vecpack.compress(x, base, rerank="int8").save(whole_path)
        qps, rec = measure(vecpack.open(whole_path))
        rows.append(("whole file encoded at once (base's codec)", "-", "-", "-", qps, rec, "-", "-", "-"))
        remove_table(whole_path)
        qps, rec = measure(vecpack.open(base_path))
        rows.append((f"base only ({args.base_rows:,} rows; recall misses the added rows)", "-", "-", "-", qps, rec, "-", "-", "-"))
        for count in (1, 10, 100):
            path = copy_table(base_path, os.path.join(workdir, f"deltas-{count}.vecpack"))
            table = vecpack.open(path)
            start = time.perf_counter()
            for b in np.array_split(rest, count):
                table.add(b)
            add_secs = time.perf_counter() - start
            del table
            table = vecpack.open(path)
            changes = table.info().get("changes")
            shards = len(table.info().get("shards", [])) - 1
            qps, rec = measure(table)
            start = time.perf_counter()
            table.compact()
            compact_secs = time.perf_counter() - start
            del table
            table = vecpack.open(path)
            after_changes = table.info().get("changes")
            if len(table) != len(x):
                print(f"  PROBLEM: {count} deltas compacted to {len(table)} rows")
            cqps, crec = measure(table)
            del table
            rows.append((f"{count} add(s)", f"{add_secs:.2f}", changes.get("generation") if changes else changes, shards,
                         qps, rec, f"{compact_secs:.2f}", cqps, crec))
            if after_changes:
                print(f"  note: after compact, info()['changes'] = {after_changes}")
            remove_table(path)
        remove_table(base_path)

        print()
        print(f"### 4. Search as deltas grow: {spec} + int8 rerank{f', nprobe={nprobe}' if nprobe else ''}, "
              f"{args.base_rows:,} base rows + {len(rest):,} added, rerank={SHORTLIST}, 1 thread, {len(q)} queries; "
              "recall@10 vs the file's neighbours")
        print()
        print("| table | add s | generation | delta shards | q/s | recall@10 | compact s | q/s after compact | recall after compact |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, add_s, gen, shards, qps, rec, comp_s, cqps, crec in rows:
            cq = fmt_rate(cqps) if cqps != "-" else "-"
            cr = f"{crec:.4f}" if crec != "-" else "-"
            print(f"| {label} | {add_s} | {gen} | {shards} | {fmt_rate(qps)} | {rec:.4f} | {comp_s} | {cq} | {cr} |")
        print(flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="glove-100-angular.hdf5")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-rows", type=int, default=300_000, help="rows in the base table of parts 2 and 4")
    parser.add_argument("--parts", default="filter,add,delete,deltas")
    parser.add_argument("--workdir", default=None, help="where temporary tables go (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    unknown = parts - {"filter", "add", "delete", "deltas"}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")

    import faiss
    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    x, q, truth = load(args.dataset, args.queries)
    print(f"{args.dataset}: {len(x):,} x {x.shape[1]} rows, {len(q)} queries; vecpack {getattr(vecpack, '__version__', '?')}, "
          f"faiss {faiss.__version__}; load average {load_avg()}", flush=True)
    workdir = tempfile.mkdtemp(prefix="changes_bench-", dir=args.workdir)
    try:
        if "filter" in parts:
            part_filter(args, x, q, faiss)
        if "add" in parts:
            part_add(args, x, q, faiss, workdir)
        if "delete" in parts:
            part_delete(args, x, q, faiss, workdir)
        if "deltas" in parts:
            part_deltas(args, x, q, truth, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s; load average {load_avg()}")


if __name__ == "__main__":
    main()
