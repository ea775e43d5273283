"""Build and search sharded vecpack tables with Dask.

    import dask.array as da, distributed, vecpack.dask
    client = distributed.Client()                      # or a cluster's scheduler address
    X = da.from_zarr("embeddings.zarr")                # rows x dim, chunked by rows
    vecpack.dask.compress(X, "pq:m=96", "out/", sample=200_000, client=client)
    ids, scores = vecpack.dask.search("out/", queries, k=10, client=client)
    vecpack.open("out/")                               # the same folder, as one Table

compress() trains one codec on a sample on the client, sends it to the workers, and has
each task encode one block of rows into one shard (shard-00000.vecpack, ...), written
atomically. Only when every shard is written does the client write manifest.json
(vecpack.write_manifest), so a folder with a manifest is always complete. The out folder
must be visible to every worker under the same path (a shared or local file system).

search() runs one search per shard on the workers, which keep their shards mapped between
calls, and merges the per-shard top-k on the client: the result equals a search of one
table holding every row (row ids are global: the shard's first row plus the local id).
With an ivf spec the partition is trained once on the sample and every shard keeps its rows in
those lists, so search(nprobe=) probes the same lists in every shard.

Needs `pip install "dask[array]" distributed`.
"""

import json
import os
import pickle
import sys
import tempfile

import dask
import numpy as np

import vecpack

__all__ = ["compress", "search"]

MANIFEST = "manifest.json"


def _shard_name(index):
    return f"shard-{index:05d}.vecpack"


# ---------------------------------------------------------------- blocks of rows
# Every source becomes a list of (name, Delayed) whose value is (X, keys or None).


def _array_block(x, keys):
    return x, keys


def _file_block(path):
    table = vecpack.read(path)
    return table.vectors, (list(table.keys) if table.has_keys else None)


def _records_block(records):
    records = list(records)
    keys = [str(key) for key, _ in records]
    rows = np.stack([np.asarray(vector, dtype=np.float32) for _, vector in records]) if records else None
    return rows, keys


def _blocks(source, keys):
    """(names, delayed blocks, row counts or None) of a Dask array, a bag or a list of paths."""
    import dask.array as da
    import dask.bag as db

    if isinstance(source, da.Array):
        if source.ndim != 2:
            raise ValueError(f"the source array must be 2-D (rows x dim), not {source.ndim}-D")
        if len(source.chunks[1]) > 1:
            source = source.rechunk({1: -1})  # a block holds whole rows
        counts = list(source.chunks[0])
        if any(np.isnan(c) for c in counts):
            counts = None
        starts = np.concatenate([[0], np.cumsum(source.chunks[0])]) if counts else None
        if keys is not None and counts is None:
            raise ValueError("keys need an array with known chunk sizes (call X.compute_chunk_sizes())")
        if keys is not None and len(keys) != starts[-1]:
            raise ValueError(f"{len(keys)} keys for {int(starts[-1])} rows")
        names, blocks = [], []
        for i, block in enumerate(source.to_delayed().ravel()):
            block_keys = list(keys[starts[i]:starts[i + 1]]) if keys is not None else None
            names.append(f"block {i} (rows {starts[i]}-{starts[i + 1]})" if counts else f"block {i}")
            blocks.append(dask.delayed(_array_block, pure=True)(block, block_keys))
        return names, blocks, counts
    if keys is not None:
        raise ValueError("keys= goes with a Dask array; files bring their own keys, bags hold (key, vector) records")
    if isinstance(source, db.Bag):
        parts = source.to_delayed()
        names = [f"partition {i}" for i in range(len(parts))]
        return names, [dask.delayed(_records_block, pure=True)(p) for p in parts], None
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    paths = [os.fspath(p) for p in source]
    return paths, [dask.delayed(_file_block, pure=True)(p) for p in paths], None


def _shape(block):
    x, _ = block
    return (0, 0) if x is None else tuple(int(n) for n in np.shape(x))


def _take(block, rows):
    x, _ = block
    return np.asarray(x[rows], dtype=np.float32)


_CODECS = {}  # on each worker: shipped bytes -> Codec or model Table, so each is loaded once


def _table_bytes(table):
    """A table's .vecpack file as bytes (a model table is shipped to the workers so)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.vecpack")
        table.save(path)
        with open(path, "rb") as f:
            return f.read()


def _table_from_bytes(blob):
    # Opened from a file that is then removed: the mapping keeps its bytes.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.vecpack")
        with open(path, "wb") as f:
            f.write(blob)
        return vecpack.open(path)


def _codec(blob):
    """A shipped encoder: a pickled Codec, or ("table", bytes) of a model Table (an ivf partition)."""
    if blob is None:
        return None
    key = blob if isinstance(blob, bytes) else blob[1]
    codec = _CODECS.get(key)
    if codec is None:
        if len(_CODECS) >= 4:
            _CODECS.clear()
        codec = _CODECS[key] = pickle.loads(blob) if isinstance(blob, bytes) else _table_from_bytes(blob[1])
    return codec


def _ivf_lists(spec):
    """The lists of a spec's ivf stage, or 0 when it has none."""
    for stage in spec.split("/"):
        name, _, args = stage.strip().partition(":")
        if name.strip() == "ivf":
            for arg in args.split(","):
                key, _, value = arg.partition("=")
                if key.strip() == "lists" and value.strip().isdigit():
                    return int(value)
            return 1
    return 0


def _encode(block, name, codec_blob, rerank, path, metric, threads):
    """One task: encodes one block and saves it as one shard (atomically); (file, rows)."""
    x, keys = block
    codec = _codec(codec_blob)
    if x is None or len(x) == 0:
        raise ValueError(f"{name}: no rows")
    if np.ndim(x) != 2 or np.shape(x)[1] != codec.dim:
        raise ValueError(f"{name}: rows have dimension {np.shape(x)[-1]}, the codec was trained on {codec.dim}")
    try:
        table = vecpack.compress(x, codec, keys=keys, metric=metric, rerank=rerank, threads=threads)
        table.save(path)
    except vecpack.Error as error:
        raise type(error)(f"{name}: {error}") from error
    return os.path.basename(path), len(table)


# ---------------------------------------------------------------- running graphs


def _client(client):
    if client is not None:
        return client
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None  # no cluster: Dask's local scheduler


def _interactive():
    return hasattr(sys, "ps1") or "ipykernel" in sys.modules or sys.stderr.isatty()


def _run(client, tasks, progress):
    """Computes a list of delayed values; cancels the rest when one fails."""
    if client is None:
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                return list(dask.compute(*tasks))
        return list(dask.compute(*tasks))
    futures = client.compute(tasks)
    try:
        if progress:
            from distributed import progress as show_progress

            show_progress(futures)
        return client.gather(futures)
    finally:
        client.cancel(futures)


def _prepare_folder(folder, overwrite):
    os.makedirs(folder, exist_ok=True)
    old = [n for n in os.listdir(folder) if n == MANIFEST or (n.startswith("shard-") and n.endswith(".vecpack"))]
    if old and not overwrite:
        raise FileExistsError(f"{folder} already holds a sharded table ({MANIFEST} or shards); pass overwrite=True")
    if MANIFEST in old:  # first, so that the folder is never a complete-looking mix
        os.remove(os.path.join(folder, MANIFEST))
    for name in old:
        if name != MANIFEST:
            os.remove(os.path.join(folder, name))


def compress(source, spec, out_folder, sample=100_000, keys=None, metric="cos", rerank=None, client=None,
             seed=1234, threads=1, overwrite=False, progress=None):
    """Encodes a large source into a folder of shards plus manifest.json; returns the manifest dict.

    source: a Dask array (rows x dim; one shard per block of rows), a list of input files in
    any format vecpack.read() knows (one shard per file; their keys are kept), or a Dask bag
    of (key, vector) records (one shard per partition).
    spec: the codec spec, e.g. 'int8' or 'pq:m=96'. One codec is trained on `sample` rows
    drawn uniformly (seeded) from the whole source, on the client, and used for every shard.
    A trained vecpack.Codec is used as it is: no sample is drawn, and files or bags are read
    only once (an untrained Codec is trained in place).
    With an ivf stage ('ivf:lists=4096/pq:m=50,nbits=4') the partition is trained once too, on
    the sample (raised to 256 rows per list when it is smaller), and every shard stores its rows
    in the same lists; search(nprobe=) then probes each shard's lists. A vecpack.Table is used as
    the model: its codec and partition encode every shard as they are (Table.compress(model)).
    keys: for a Dask array, one unique str per row (or None). metric: 'cos', 'ip' or 'l2'.
    rerank: a second codec spec (e.g. 'int8') every row is also stored with, for
    search(rerank=N); each shard trains its own (write_manifest allows that).
    client: a distributed.Client; None uses the current one, else Dask's local scheduler.
    threads: encoding threads per task (Dask runs several tasks at once).
    overwrite: replace the manifest and shards of an earlier run in out_folder.
    progress: show Dask's progress bar; None shows it in an interactive session.

    A block that fails (e.g. rows of another dimension) fails the job with an error naming
    it, and no manifest.json is written. A task lost with its worker is rerun elsewhere;
    shards are written to a temporary file then renamed, so a rerun or duplicated task never
    leaves a partial or doubled shard.
    """
    client = _client(client)
    progress = _interactive() if progress is None else progress
    names, blocks, counts = _blocks(source, keys)
    if not blocks:
        raise ValueError("the source has no rows")

    lists = _ivf_lists(spec) if isinstance(spec, str) else 0
    if isinstance(spec, vecpack.Table):
        codec = spec
    elif lists:
        codec = None  # a model table, trained on the sample below
        sample = max(sample, 256 * lists)
    else:
        codec = spec if isinstance(spec, vecpack.Codec) else vecpack.Codec(spec)
    if rerank is not None:
        vecpack.Codec(rerank)  # a bad spec fails here, not in every task
    if codec is None or (isinstance(codec, vecpack.Codec) and not codec.trained):
        if counts is None:  # files and bags: one pass for sizes, to check dimensions and sample uniformly
            shapes = _run(client, [dask.delayed(_shape)(b) for b in blocks], False)
            counts = [n for n, _ in shapes]
            for name, (n, d) in zip(names, shapes):
                if n == 0:
                    raise ValueError(f"{name}: no rows")
                if d != shapes[0][1]:
                    raise ValueError(f"{name}: rows have dimension {d}, but {names[0]} has {shapes[0][1]}")
        # A uniform sample without replacement over all rows, fetched block by block.
        total = int(sum(counts))
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(total, size=sample, replace=False)) if sample < total else np.arange(total)
        cuts = np.searchsorted(chosen, starts)
        picks = [(b, chosen[cuts[i]:cuts[i + 1]] - starts[i]) for i, b in enumerate(blocks) if cuts[i + 1] > cuts[i]]
        rows = np.concatenate(_run(client, [dask.delayed(_take)(b, rows) for b, rows in picks], False))
        if codec is None:  # the partition and the codec, trained once, shipped as a model table
            codec = vecpack.compress(rows, spec, metric=metric, train_size=None, seed=seed, threads=0)
        else:
            codec.train(rows, seed=seed)
    # else: with a trained codec, blocks of another dimension are caught by the encoding tasks.

    _prepare_folder(out_folder, overwrite)
    shipped = ("table", _table_bytes(codec)) if isinstance(codec, vecpack.Table) else pickle.dumps(codec)
    codec_blob = dask.delayed(shipped, pure=True)  # one key in the graph, sent once per worker
    files = [_shard_name(i) for i in range(len(blocks))]
    tasks = [dask.delayed(_encode, pure=True)(b, name, codec_blob, rerank, os.path.join(out_folder, f),
                                              metric, threads)
             for b, name, f in zip(blocks, names, files)]
    written = _run(client, tasks, progress)
    for (file, rows), expected, name in zip(written, counts or [None] * len(names), names):
        if expected is not None and rows != expected:
            raise vecpack.Error(f"{name}: {file} holds {rows} rows, expected {expected}")
    vecpack.write_manifest(out_folder, files)
    with open(os.path.join(out_folder, MANIFEST)) as f:
        return json.load(f)


# ---------------------------------------------------------------- search

_OPEN = {}  # on each worker: (path, inode, mtime) -> Table, so each shard is mapped once


def _open_shard(path):
    st = os.stat(path)
    key = (path, st.st_ino, st.st_mtime_ns)
    table = _OPEN.get(key)
    if table is None:
        for old in [k for k in _OPEN if k[0] == path]:  # the shard was rewritten
            del _OPEN[old]
        table = _OPEN[key] = vecpack.open(path)
    return table


def _search_shards(jobs, queries, k, metric, rerank, threads, nprobe=0):
    """One task: searches some shards (path, first row) of a worker; their merged top-k and metric."""
    results = []
    for path, first_row in jobs:
        table = _open_shard(path)
        ids, scores = table.search(queries, k=min(k, len(table)), metric=metric, rerank=rerank, threads=threads,
                                   nprobe=nprobe)
        results.append((np.where(ids >= 0, ids + first_row, -1), scores))
        metric = metric or table.metric
    return _merge(results, k, metric) + (metric,)


def _merge(results, k, metric):
    """Exact top-k of per-shard top-k lists: best score first, ties to the smaller global id."""
    ids = np.concatenate([r[0] for r in results], axis=1)
    scores = np.concatenate([r[1] for r in results], axis=1)
    missing = ids < 0
    order_key = np.where(missing, np.inf, scores if metric == "l2" else -scores.astype(np.float64))
    tie_key = np.where(missing, np.iinfo(np.int64).max, ids)
    order = np.lexsort((tie_key, order_key), axis=-1)[:, :k]
    ids, scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)
    if ids.shape[1] < k:  # fewer rows than k in all: pad as Table.search does
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.nan)
    return ids, scores


def _shards(folder):
    path = os.path.join(folder, MANIFEST)
    if not os.path.exists(path):
        raise vecpack.IoError(f"{folder}: no {MANIFEST}; not a complete sharded table")
    with open(path) as f:
        manifest = json.load(f)
    return [(os.path.join(folder, s["file"]), int(s["first_row"])) for s in manifest["shards"]]


def search(folder, queries, k=10, client=None, metric=None, rerank=None, threads=0, nprobe=0):
    """Exact top-k over every shard of a folder written by compress() (or `vecpack compress --shard-rows`).

    Each worker searches a fixed share of the shards (the same share on every call while the
    workers stay the same, so each shard is mapped once and stays mapped) and merges them; the
    client merges the workers' top-k lists. Returns (ids, scores) as Table.search does: ids are
    global rows (the shard's first row plus the local row), shapes (k,) for one query and
    (nq, k) for several; similarities (cos, ip) descend, l2 squared distances ascend, ties go
    to the smaller row, missing entries have id -1. Search many queries per call: each call
    costs one task per worker.
    client: a distributed.Client; None uses the current one, else searches in this process.
    metric: 'ip', 'cos' or 'l2' instead of the table's. threads: per worker, 0 for one per core.
    rerank: as Table.search; each shard rescores its own shortlist of that many candidates.
    nprobe: for shards of an ivf table, the lists each query scans (0: every list). The shards
    share one partition, so every shard probes the same lists, and the merged result equals a
    search of the single table with that nprobe (with rerank: each shard's own shortlist).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    queries = np.asarray(queries, dtype=np.float32)
    single = queries.ndim == 1
    batch = queries[None, :] if single else queries
    jobs = _shards(folder)
    client = _client(client)
    if client is None:
        ids, scores, _ = _search_shards(jobs, batch, k, metric, rerank, threads, nprobe)
    else:
        workers = sorted(client.scheduler_info()["workers"])
        [batch_future] = client.scatter([batch], broadcast=True, hash=False)
        futures = [client.submit(_search_shards, jobs[i::len(workers)], batch_future, k, metric, rerank, threads, nprobe,
                                 pure=False, workers=[worker], allow_other_workers=True)
                   for i, worker in enumerate(workers) if jobs[i::len(workers)]]
        results = client.gather(futures)
        ids, scores = _merge(results, k, results[0][2])
    return (ids[0], scores[0]) if single else (ids, scores)
