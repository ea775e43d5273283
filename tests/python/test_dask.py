"""vecpack.dask: sharded compress and search on a local Dask cluster (two worker processes)."""
import json
import logging
import os
import shutil
import signal
import sys

import numpy as np
import pytest

import vecpack

WHY = "vecpack.dask needs Dask: pip install 'dask[array]' distributed"
da = pytest.importorskip("dask.array", reason=WHY)
db = pytest.importorskip("dask.bag", reason=WHY)
distributed = pytest.importorskip("distributed", reason=WHY)
cloudpickle = pytest.importorskip("cloudpickle", reason=WHY)
import vecpack.dask as vdask  # noqa: E402

from conftest import BIN, run_cli  # noqa: E402

# The worker processes need not import this file: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
        yield client


def clustered_rows(n, d, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, d)).astype(np.float32)
    return centres[rng.integers(0, 64, n)] + 0.4 * rng.normal(size=(n, d)).astype(np.float32)


def clustered_block(block_info=None, seed=7):
    """One block of 64 Gaussian clusters, made where it is computed (seeded by its position)."""
    info = block_info[None]
    (n, d), index = info["chunk-shape"], info["chunk-location"][0]
    centres = np.random.default_rng(seed).normal(size=(64, d)).astype(np.float32)
    rng = np.random.default_rng([seed, index])
    return centres[rng.integers(0, 64, n)] + 0.4 * rng.normal(size=(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def generated():
    """200,000 x 32 rows as a Dask array of 8 blocks made on the workers, and as numpy."""
    source = da.map_blocks(clustered_block, chunks=((25_000,) * 8, (32,)), dtype=np.float32)
    return source, source.compute(scheduler="sync")


def shard_files(folder):
    with open(os.path.join(folder, "manifest.json")) as f:
        return [s["file"] for s in json.load(f)["shards"]]


def test_sharded_search_equals_one_table(client, generated, tmp_path):
    source, rows = generated
    codec = vecpack.Codec("pq:m=8").train(rows[::10], seed=5)
    folder = tmp_path / "sharded"
    manifest = vdask.compress(source, codec, folder, client=client, progress=False)
    assert len(manifest["shards"]) == 8 and sorted(os.listdir(folder)) == ["manifest.json"] + [
        f"shard-{i:05d}.vecpack" for i in range(8)]

    whole = vecpack.compress(rows, codec)
    sharded = vecpack.open(folder)
    assert len(sharded) == len(whole) == 200_000
    queries = rows[::2000] + 0.1
    expected_ids, expected_scores = whole.search(queries, k=10)
    for ids, scores in (sharded.search(queries, k=10), vdask.search(folder, queries, k=10, client=client)):
        assert np.array_equal(ids, expected_ids)
        assert np.array_equal(scores, expected_scores)
    ids, scores = vdask.search(folder, queries[0], k=10, client=client)  # one query: 1-D, as Table.search
    assert ids.shape == (10,) and np.array_equal(ids, expected_ids[0])
    ids, _ = vdask.search(folder, queries, k=10, client=client)  # again: the workers' shards stay mapped
    assert np.array_equal(ids, expected_ids)


def test_ivf_shards_share_one_partition_and_search_like_one_table(client, generated, tmp_path):
    source, rows = generated
    folder = tmp_path / "ivf"
    manifest = vdask.compress(source, "ivf:lists=64,residual=on/pq:m=8", folder, metric="ip", sample=20_000,
                              rerank="int8", client=client, progress=False)
    assert manifest["spec"].startswith("ivf:lists=64,residual=on/") and "partition_fingerprint" in manifest
    sharded = vecpack.open(folder)
    assert len(sharded) == 200_000 and sharded.recall_curve()["points"]
    # The shards hold the rows of one table encoded like the first shard: same codec, same lists.
    first = vecpack.open(folder / "shard-00000.vecpack")
    whole = vecpack.compress(rows, first, metric="ip")
    queries = rows[::2000] + 0.1
    for nprobe in (1, 8):
        expected_ids, expected_scores = whole.search(queries, k=10, nprobe=nprobe)
        for ids, scores in (sharded.search(queries, k=10, nprobe=nprobe),
                            vdask.search(folder, queries, k=10, nprobe=nprobe, client=client)):
            assert np.array_equal(ids, expected_ids)
            assert np.array_equal(scores, expected_scores)
    # Every list probed is the exact scan of the codes, and nprobe 8 of 64 finds most of it.
    exact, _ = whole.search(queries, k=10, nprobe=64)
    found, _ = vdask.search(folder, queries, k=10, nprobe=8, client=client)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found)])
    assert overlap > 0.8, overlap
    # With rerank each shard rescores its own shortlist: at least the single table's recall.
    truth = np.argsort(-(queries @ rows.T), axis=1)[:, :10]
    reranked, _ = vdask.search(folder, queries, k=10, nprobe=8, rerank=50, client=client)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, reranked)]) > 0.8
    with pytest.raises(vecpack.Error, match="nprobe=65 exceeds"):
        vdask.search(folder, queries, k=10, nprobe=65, client=client)


def test_keys_l2_and_more_k_than_rows(client, tmp_path):
    x = clustered_rows(3_000, 16, seed=1)
    keys = [f"w{i}" for i in range(len(x))]
    folder = tmp_path / "keyed"
    codec = vecpack.Codec("int8").train(x[:1_000])
    # Chunks of 8 columns: compress() rejoins them so that each shard holds whole rows.
    vdask.compress(da.from_array(x, chunks=(1_000, 8)), codec, folder, keys=keys, metric="l2", client=client,
                   progress=False)
    sharded = vecpack.open(folder)
    assert np.allclose(sharded["w2500"], x[2500], atol=0.05)
    whole = vecpack.compress(x, codec, metric="l2")
    ids, scores = vdask.search(folder, x[:5], k=3_005, client=client)
    expected_ids, expected_scores = whole.search(x[:5], k=3_005)
    assert np.array_equal(ids, expected_ids) and np.all(ids[:, -5:] == -1)
    assert np.array_equal(scores[:, :3_000], expected_scores[:, :3_000])
    assert np.all(np.diff(scores[:, :3_000], axis=1) >= 0)  # squared distances ascend


def test_bag_of_records(client, tmp_path):
    x = clustered_rows(900, 8, seed=2)
    bag = db.from_sequence([(f"r{i}", x[i]) for i in range(len(x))], npartitions=3)
    manifest = vdask.compress(bag, "f16", tmp_path / "bag", client=client, progress=False)
    assert len(manifest["shards"]) == 3
    table = vecpack.open(tmp_path / "bag")
    assert len(table) == 900 and np.allclose(table["r899"], x[899], atol=1e-2)


def kill_worker_once(block, marker, log, block_info=None):
    """Block 3 kills its worker process the second time it is computed (when encoded), once."""
    if block_info[0]["chunk-location"][0] == 3:
        with open(log, "a") as f:
            f.write("computed\n")
        with open(log) as f:
            calls = len(f.read().splitlines())
        if calls >= 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    return block


def test_a_killed_worker_is_survived(client, tmp_path):
    x = clustered_rows(40_000, 16, seed=3)
    marker, log = str(tmp_path / "killed"), str(tmp_path / "log")
    source = da.from_array(x, chunks=(5_000, 16)).map_blocks(kill_worker_once, marker, log, dtype=x.dtype)
    folder = tmp_path / "survived"
    vdask.compress(source, "int8", folder, sample=8_000, client=client, progress=False)
    assert os.path.exists(marker), "the worker was not killed: the test did not test anything"
    table = vecpack.open(folder)
    assert len(table) == 40_000 and np.allclose(table[17_500], x[17_500], atol=0.05)
    files = shard_files(folder)
    assert len(files) == 8 and not [n for n in os.listdir(folder) if n not in files + ["manifest.json"]]
    if os.path.exists(BIN):  # the manifest's checksum of every shard, and every shard
        run_cli("verify", folder)


def test_a_block_of_another_dimension_names_it(client, tmp_path):
    paths = []
    for name, shape in (("a.npy", (500, 16)), ("b.npy", (400, 16)), ("odd.npy", (300, 12)), ("d.npy", (200, 16))):
        paths.append(tmp_path / name)
        np.save(paths[-1], clustered_rows(shape[0], shape[1], seed=4))
    folder = tmp_path / "out"
    with pytest.raises(ValueError, match=r"odd\.npy.*dimension 12"):
        vdask.compress(paths, "int8", folder, client=client, progress=False)
    assert not os.path.exists(folder / "manifest.json")
    # With a trained codec the files are read once, by the encoding tasks: one of them fails.
    codec = vecpack.Codec("int8").train(np.load(paths[0]))
    with pytest.raises(ValueError, match=r"odd\.npy.*dimension 12"):
        vdask.compress(paths, codec, folder, client=client, overwrite=True, progress=False)
    assert not os.path.exists(folder / "manifest.json")

    # The same files without the odd one: one shard each, in order.
    manifest = vdask.compress([p for p in paths if p.name != "odd.npy"], "int8", folder, client=client,
                              overwrite=True, progress=False)
    assert [s["rows"] for s in manifest["shards"]] == [500, 400, 200]


def test_shards_of_two_codecs_do_not_make_a_table(client, tmp_path):
    x = clustered_rows(4_000, 16, seed=6)
    first, second = tmp_path / "first", tmp_path / "second"
    vdask.compress(da.from_array(x, chunks=(1_000, 16)), "int8", first, client=client, progress=False)
    vdask.compress(da.from_array(2 * x, chunks=(1_000, 16)), "int8", second, client=client, progress=False)
    files = shard_files(first)
    shutil.copyfile(second / files[2], first / files[2])
    with pytest.raises(vecpack.Error, match=files[2]):
        vecpack.write_manifest(first, files)
