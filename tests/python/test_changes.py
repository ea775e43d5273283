"""Tables that change: add, delete, compact, filtered search, one writer, readers on snapshots."""
import subprocess
import sys
import threading

import numpy as np
import pytest

import vecpack
from conftest import BIN


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    return unit(rng.normal(size=(3000, 24)))


def keys(first, count):
    return [f"w{i}" for i in range(first, first + count)]


def test_filtered_search_equals_brute_force_over_allowed_rows(rows):
    t = vecpack.compress(rows, "f32", keys=keys(0, len(rows)))
    q = rows[:20] + 0.01
    rng = np.random.default_rng(5)
    for share in (0.01, 0.1, 0.5):
        allowed = np.flatnonzero(rng.random(len(rows)) < share)
        ids, scores = t.search(q, k=10, allow=allowed, threads=1)
        scores_all = unit(q) @ rows[allowed].T
        expected = allowed[np.argsort(-scores_all, axis=1, kind="stable")[:, :10]]
        assert np.array_equal(ids, expected), share
        denied_ids, _ = t.search(q, k=10, deny=allowed)
        assert not np.isin(denied_ids, allowed).any()
    mask = np.zeros(len(rows), dtype=bool)
    mask[allowed] = True
    assert np.array_equal(t.search(q, k=10, allow=mask)[0], t.search(q, k=10, allow=allowed.astype(np.uint32))[0])
    by_key, _ = t.search(rows[0], k=3, allow=["w7", "w8", "w9"])
    assert sorted(by_key.tolist()) == [7, 8, 9]
    with pytest.raises(vecpack.NotFoundError, match="allow: key 'nope' is not in the table"):
        t.search(rows[0], allow=["nope"])
    with pytest.raises(ValueError, match="allow or deny, not both"):
        t.search(rows[0], allow=[1], deny=[2])
    with pytest.raises(vecpack.Error, match="row id 3000 is outside the table's 3000 rows"):
        t.search(rows[0], allow=[3000])


def test_add_delete_compact_in_memory(rows):
    base = vecpack.compress(rows[:2500], "int8", keys=keys(0, 2500))
    whole = vecpack.compress(rows, base, keys=keys(0, 3000))
    grown = vecpack.compress(rows[:2500], base, keys=keys(0, 2500))
    grown.add(rows[2500:], keys=keys(2500, 500))
    assert len(grown) == 3000 and grown.info()["changes"]["added_rows"] == 500
    q = rows[:30]
    assert np.array_equal(grown.search(q, k=10)[0], whole.search(q, k=10)[0])
    with pytest.raises(vecpack.Error, match="key 'w3' is already in the table"):
        grown.add(rows[:1], keys=["w3"])
    grown.add(rows[:1] * -1, keys=["w3"], replace=True)
    assert np.allclose(grown["w3"], -rows[0], atol=0.02)
    grown.delete(["w10", "w11"])
    grown.delete(np.array([12]))
    assert grown.deleted_rows == 4  # w3's old row, w10, w11, row 12
    with pytest.raises(KeyError):
        grown["w10"]
    ids, _ = grown.search(rows[10:13], k=5)
    assert not np.isin(ids, [3, 10, 11, 12]).any()
    grown.compact()
    assert len(grown) == 2997 and grown.deleted_rows == 0 and "w10" not in grown


def test_changes_on_disk_are_seen_by_new_opens_only(rows, tmp_path):
    path = tmp_path / "t.vecpack"
    vecpack.compress(rows[:2500], "pq:m=6", keys=keys(0, 2500)).save(path)
    reader = vecpack.open(path)
    before = reader.search(rows[:5], k=5)
    writer = vecpack.open(path)
    writer.add(rows[2500:], keys=keys(2500, 500))
    writer.delete(["w0"])
    assert len(vecpack.open(path)) == 3000 and vecpack.open(path).deleted_rows == 1
    assert np.array_equal(reader.search(rows[:5], k=5)[0], before[0]) and len(reader) == 2500
    # Saving over a changed file replaces the table, changes and all.
    other = tmp_path / "other.vecpack"
    vecpack.open(path).save(other)
    vecpack.open(other).add(rows[:1], keys=["extra"])
    vecpack.open(path).save(other)
    assert len(vecpack.open(other)) == 2999 and not (tmp_path / "other.vecpack.changes").exists()
    writer.compact()
    assert len(vecpack.open(path)) == 2999 and not (tmp_path / "t.vecpack.changes").exists()
    assert np.array_equal(reader.search(rows[:5], k=5)[0], before[0])


def test_a_second_writer_gets_the_lock_message(rows, tmp_path):
    path = tmp_path / "t.vecpack"
    vecpack.compress(rows, "int8").save(path)
    (tmp_path / "t.vecpack.changes").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\n"
         "import fcntl, os\n"
         "fd = os.open(sys.argv[1] + '.changes/.lock', os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())\n"
         "print('locked', flush=True)\n"
         "sys.stdin.readline()\n", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        t = vecpack.open(path)
        with pytest.raises(vecpack.LockedError, match=rf"is locked by pid {holder.pid} \(another writer"):
            t.delete([0])
        cli = subprocess.run([BIN, "delete", str(path), "--ids", "0"], capture_output=True, text=True)
        assert cli.returncode == 8 and f"locked by pid {holder.pid}" in cli.stderr
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait()
    t.delete([0])
    assert t.deleted_rows == 1


WRITER = """
import sys, numpy as np, vecpack
path, q = sys.argv[1], np.load(sys.argv[2])
t = vecpack.open(path)
for i in range(25):
    t.add(q[None, :], keys=[f"probe{i}"])   # generation 2i+1: the probe is the nearest row
    t.delete([f"probe{i}"])                 # generation 2i+2: the base's nearest row again
"""


def test_readers_see_one_generation_while_another_process_writes(rows, tmp_path):
    path = tmp_path / "t.vecpack"
    vecpack.compress(rows, "int8", keys=keys(0, len(rows))).save(path)
    q = unit(rows[:1] + rows[1:2])[0]
    np.save(tmp_path / "q.npy", q)
    base_best = vecpack.open(path).search(q, k=1)[0][0]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tmp_path / "q.npy")])
    errors, answers = [], [0]

    def read():
        try:
            while writer.poll() is None:
                t = vecpack.open(path)
                generation = t.info().get("changes", {}).get("generation", 0)
                ids, _ = t.search(q, k=1, threads=1)
                best = t.keys[ids[0]]
                expected = f"probe{(generation - 1) // 2}" if generation % 2 else f"w{base_best}"
                if best != expected:
                    errors.append(f"generation {generation} answered {best}, expected {expected}")
                answers[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    assert writer.wait() == 0
    assert not errors, errors[:5]
    assert answers[0] > 50
    final = vecpack.open(path)
    assert final.info()["changes"]["generation"] == 50 and final.deleted_rows == 25


def test_rows_in_table_filter(rows):
    tables = (np.arange(len(rows)) % 4 == 0).astype(np.uint32)
    t = vecpack.compress(rows, "hash:rows=128,k=2", row_tables=tables)
    assert np.array_equal(t.row_tables, tables)
    items = t.rows_in_table(1)
    assert np.array_equal(items, np.flatnonzero(tables == 1))
    ids, _ = t.search(rows[:5], k=7, allow=items)
    assert np.isin(ids, items).all()
    assert vecpack.compress(rows, "int8").row_tables is None
