"""Trainable shared-parameter tables: formulas, gradients, optimizer steps, errors, zero-copy
parameters, and a matrix-factorisation training loop written in numpy around them."""
import gc

import numpy as np
import pytest

import vecpack


def small_tables():
    return {
        "hash": vecpack.HashEmbedding(40, 5, buckets=11, k=3, seed=3),
        "hash-plain": vecpack.HashEmbedding(40, 5, buckets=11, k=2, weights=False, seed=3),
        "qr-mult": vecpack.QREmbedding(40, 5, m=7, op="mult", seed=3),
        "qr-add": vecpack.QREmbedding(40, 5, m=7, op="add", seed=3),
        "qr-concat": vecpack.QREmbedding(40, 5, m=7, op="concat", seed=3),
        "mixdim": vecpack.MixedDimEmbedding([6, 14, 20], [5, 3, 1], 5, seed=3),
    }


def randomize(table, seed):
    rng = np.random.default_rng(seed)
    for array in table.parameters.values():
        array[...] = rng.normal(size=array.shape)


def test_hash_forward_is_the_weighted_sum_of_pool_rows():
    t = vecpack.HashEmbedding(50, 4, buckets=13, k=3, seed=7)
    randomize(t, 1)
    pool, weights = t.parameters["pool"], t.parameters["weights"]
    assert pool.shape == (13, 4) and weights.shape == (50, 3)
    ids = np.array([0, 7, 49, 7])
    expected = np.stack([sum(weights[i, j] * pool[b] for j, b in enumerate(t.buckets_of(i))) for i in ids])
    out = t.forward(ids)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # Any shape of ids: rows come back in ids.shape + (dim,).
    assert t.forward(ids.reshape(2, 2)).shape == (2, 2, 4)

    plain = vecpack.HashEmbedding(50, 4, buckets=13, k=2, weights=False)
    assert list(plain.parameters) == ["pool"]
    p = plain.parameters["pool"]
    np.testing.assert_allclose(plain.forward([31])[0], p[plain.buckets_of(31)].sum(axis=0), rtol=1e-6)


def test_hash_tables_multiplex_one_pool():
    t = vecpack.HashEmbedding(30, 3, buckets=17, k=2, tables=3)
    randomize(t, 2)
    rows = t.forward([4, 4, 4], table_ids=[0, 1, 2])
    np.testing.assert_array_equal(rows[0], t.forward([4])[0])
    assert not np.array_equal(rows[1], rows[2])
    w = t.parameters["weights"]
    assert w.shape == (90, 2)
    expected = sum(w[30 + 4, j] * t.parameters["pool"][b] for j, b in enumerate(t.buckets_of(4, table=1)))
    np.testing.assert_allclose(rows[1], expected, rtol=1e-5)
    with pytest.raises(vecpack.NotFoundError, match=r"table_ids\[0\] = 3"):
        t.forward([1], table_ids=[3])


@pytest.mark.parametrize("op", ["mult", "add", "concat"])
def test_qr_forward_combines_quotient_and_remainder_rows(op):
    t = vecpack.QREmbedding(10, 5, m=3, op=op)
    randomize(t, 3)
    q, r = t.parameters["quotient"], t.parameters["remainder"]
    assert q.shape == ((4, 3) if op == "concat" else (4, 5)) and r.shape == ((3, 2) if op == "concat" else (3, 5))
    ids = np.arange(10)
    combine = {"mult": lambda a, b: a * b, "add": lambda a, b: a + b,
               "concat": lambda a, b: np.concatenate([a, b], axis=1)}[op]
    np.testing.assert_allclose(t.forward(ids), combine(q[ids // 3], r[ids % 3]), rtol=1e-6)


def test_mixdim_forward_projects_each_block():
    t = vecpack.MixedDimEmbedding([3, 5, 2], [4, 2, 1], 4, n_ids=10)
    randomize(t, 4)
    p = t.parameters
    assert list(p) == ["block0", "projection0", "block1", "projection1", "block2", "projection2"]
    expected = np.concatenate([p["block0"] @ p["projection0"], p["block1"] @ p["projection1"],
                               p["block2"] @ p["projection2"]])
    np.testing.assert_allclose(t.forward(np.arange(10)), expected, rtol=1e-5, atol=1e-6)


def test_parameters_are_writable_zero_copy_views():
    t = vecpack.QREmbedding(100, 8, m=10, op="add")
    q = t.parameters["quotient"]
    assert q.dtype == np.float32 and q.flags.writeable and q.base is t
    assert np.shares_memory(q, t.parameters["quotient"])
    before = t.forward([23])
    q[2] += 1.0  # id 23: quotient row 2, remainder row 3
    np.testing.assert_allclose(t.forward([23]), before + 1.0, rtol=1e-6)
    t.parameters["remainder"][:] = 0
    t.parameters["quotient"][:] = 0
    assert not t.forward(np.arange(100)).any()
    # Training writes land in the same memory the views show.
    t.backward([23], np.ones((1, 8), np.float32))
    t.step(0.5)
    assert (q[2] == -0.5).all()
    del t
    gc.collect()
    assert (q[2] == -0.5).all()  # the view keeps the table alive


@pytest.mark.parametrize("name", list(small_tables()))
def test_backward_matches_finite_differences(name):
    t = small_tables()[name]
    randomize(t, 5)
    ids = np.array([3, 1, 3, 38, 19, 6])
    target = np.random.default_rng(6).normal(size=(len(ids), t.dim))

    def loss():
        return 0.5 * ((t.forward(ids).astype(np.float64) - target) ** 2).sum()

    numeric = {}
    for key, array in t.parameters.items():
        numeric[key] = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + 1e-2
            up = loss()
            array[index] = saved - 1e-2
            down = loss()
            array[index] = saved
            numeric[key][index] = (up - down) / 2e-2
    before = {key: array.copy() for key, array in t.parameters.items()}
    t.backward(ids, (t.forward(ids) - target).astype(np.float32))
    t.step(1.0, optimizer="sgd")
    for key, array in t.parameters.items():
        np.testing.assert_allclose(before[key] - array, numeric[key], rtol=2e-3, atol=2e-3, err_msg=key)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_step_changes_exactly_the_touched_rows(optimizer):
    t = vecpack.QREmbedding(40, 5, m=7, op="mult", optimizer=optimizer)
    assert t.optimizer == optimizer
    ids = np.array([2, 17, 2, 33])
    before = {key: array.copy() for key, array in t.parameters.items()}
    t.backward(ids, np.random.default_rng(7).normal(size=(4, 5)))
    t.step(0.05)
    changed = {key: (before[key] != array).any(axis=1) for key, array in t.parameters.items()}
    assert set(np.flatnonzero(changed["quotient"])) == set(ids // 7)
    assert set(np.flatnonzero(changed["remainder"])) == set(ids % 7)
    if optimizer == "adagrad":  # first step: lr * g / |g|
        moved = np.abs(before["quotient"] - t.parameters["quotient"])[sorted(set(ids // 7))]
        np.testing.assert_allclose(moved, 0.05, rtol=1e-3)
    after = {key: array.copy() for key, array in t.parameters.items()}
    t.step(0.05)  # gradients were cleared
    for key, array in t.parameters.items():
        np.testing.assert_array_equal(array, after[key])


def test_errors_name_the_argument():
    with pytest.raises(vecpack.SpecError, match="buckets"):
        vecpack.HashEmbedding(10, 4, buckets=0, k=1)
    with pytest.raises(vecpack.SpecError, match=r"k \(hashes per id\) must be 1..buckets \(8\), not 9"):
        vecpack.HashEmbedding(10, 4, buckets=8, k=9)
    with pytest.raises(vecpack.SpecError, match=r"k \(hashes per id\)"):
        vecpack.HashEmbedding(10, 4, buckets=8, k=0)
    with pytest.raises(vecpack.SpecError, match=r"m \(remainder rows\) must be 1..n_ids \(10\), not 0"):
        vecpack.QREmbedding(10, 4, m=0)
    with pytest.raises(vecpack.SpecError, match=r"m \(remainder rows\).*not 11"):
        vecpack.QREmbedding(10, 4, m=11)
    with pytest.raises(vecpack.SpecError, match="op must be"):
        vecpack.QREmbedding(10, 4, m=2, op="mul")
    with pytest.raises(vecpack.SpecError, match="block_rows add up to 8, not n_ids = 9"):
        vecpack.MixedDimEmbedding([3, 5], [4, 2], 4, n_ids=9)
    with pytest.raises(vecpack.SpecError, match=r"block_dims\[1\] must be 1..dim \(4\), not 0"):
        vecpack.MixedDimEmbedding([3, 5], [4, 0], 4)
    with pytest.raises(vecpack.SpecError, match=r"block_dims\[0\] must be 1..dim \(4\), not 5"):
        vecpack.MixedDimEmbedding([3, 5], [5, 2], 4)
    with pytest.raises(vecpack.SpecError, match="optimizer"):
        vecpack.QREmbedding(10, 4, m=2, optimizer="adam")
    t = vecpack.QREmbedding(10, 4, m=3)
    with pytest.raises(vecpack.NotFoundError, match=r"ids\[1\] = 10 is out of range \[0, 10\)"):
        t.forward([2, 10])
    with pytest.raises(vecpack.NotFoundError, match=r"ids\[0\] = -1"):
        t.backward([-1], np.zeros((1, 4)))
    with pytest.raises(vecpack.Error, match=r"grad has shape \(2, 3\); expected \(2, 4\)"):
        t.backward([1, 2], np.zeros((2, 3)))
    with pytest.raises(vecpack.Error, match=r"grad has shape \(4,\); expected \(1, 4\)"):
        t.backward([1], np.zeros(4))
    with pytest.raises(TypeError, match="ids must be integers"):
        t.forward([1.5])


def test_parameter_bytes_follow_the_formulas():
    assert vecpack.HashEmbedding(1000, 16, buckets=100, k=2).parameter_bytes() == 4 * (100 * 16 + 1000 * 2)
    assert vecpack.HashEmbedding(1000, 16, buckets=100, k=2, weights=False).parameter_bytes() == 4 * 100 * 16
    assert vecpack.QREmbedding(1000, 16, m=64, op="mult").parameter_bytes() == 4 * (16 * 16 + 64 * 16)
    assert vecpack.QREmbedding(1000, 15, m=64, op="concat").parameter_count() == 16 * 8 + 64 * 7
    t = vecpack.MixedDimEmbedding([100, 900], [16, 4], 16)
    assert t.parameter_bytes() == 4 * (100 * 16 + 16 * 16 + 900 * 4 + 4 * 16)
    assert t.parameter_bytes() == 4 * sum(a.size for a in t.parameters.values())


def test_save_writes_the_decoded_rows(tmp_path):
    t = vecpack.HashEmbedding(60, 8, buckets=20, k=2)
    rows = t.forward(np.arange(60))
    t.save(tmp_path / "hash.vecpack")
    saved = vecpack.open(tmp_path / "hash.vecpack")
    assert saved.spec == "f16" and len(saved) == 60 and saved.dim == 8 and saved.metric == "ip"
    np.testing.assert_allclose(saved.vectors, rows, rtol=2e-3, atol=1e-4)
    t.save(tmp_path / "hash.f32.vecpack", spec="f32")
    np.testing.assert_array_equal(vecpack.open(tmp_path / "hash.f32.vecpack").vectors, rows)
    np.testing.assert_array_equal(t.to_table().vectors, rows)


# ---------------------------------------------------------------- training in numpy

def power_law_interactions(n_users, n_items, count, seed):
    """(users, items, y): items Zipf-like by rank, y from a planted rank-4 model plus noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    p = 1.0 / np.arange(1, n_items + 1) ** 1.05
    users = rng.integers(0, n_users, count)
    items = rng.choice(n_items, size=count, p=p / p.sum())
    y = (a[users] * b[items]).sum(axis=1) / 2 + 0.1 * rng.normal(size=count)
    return users, items, y.astype(np.float32)


@pytest.mark.parametrize("make", [
    lambda n, d: vecpack.HashEmbedding(n, d, buckets=200, k=2, optimizer="adagrad"),
    lambda n, d: vecpack.QREmbedding(n, d, m=100, op="mult", optimizer="adagrad"),
    lambda n, d: vecpack.MixedDimEmbedding([50, 450, 1500], [16, 4, 2], d, n_ids=n, optimizer="adagrad"),
], ids=["hash", "qr", "mixdim"])
def test_matrix_factorisation_trains_with_a_numpy_loop(make):
    n_users, n_items, d, lr, batch = 1000, 2000, 16, 0.05, 256
    users, items, y = power_law_interactions(n_users, n_items, 66000, seed=11)
    train, held = slice(0, 60000), slice(60000, None)
    table = make(n_items, d)
    assert table.parameter_bytes() < n_items * d * 4
    rng = np.random.default_rng(12)
    u = (rng.normal(size=(n_users, d)) / np.sqrt(d)).astype(np.float32)
    u_acc = np.zeros_like(u)

    def loss(part):
        prediction = (u[users[part]] * table.forward(items[part])).sum(axis=1)
        return float(0.5 * np.mean((prediction - y[part]) ** 2))

    initial, initial_held = loss(train), loss(held)
    for _ in range(5):
        order = rng.permutation(60000)
        for begin in range(0, 60000, batch):
            rows = order[begin:begin + batch]
            ids, uid = items[rows], users[rows]
            v = table.forward(ids)
            err = (u[uid] * v).sum(axis=1) - y[rows]
            grad_u = np.zeros_like(u)
            np.add.at(grad_u, uid, err[:, None] * v)
            table.backward(ids, err[:, None] * u[uid])
            table.step(lr)
            touched = np.unique(uid)
            u_acc[touched] += grad_u[touched] ** 2
            u[touched] -= lr * grad_u[touched] / (np.sqrt(u_acc[touched]) + 1e-10)
    final, final_held = loss(train), loss(held)
    print(f"{table!r}: train loss {initial:.3f} -> {final:.3f}, held-out {initial_held:.3f} -> {final_held:.3f}, "
          f"{table.parameter_bytes()} bytes (full {n_items * d * 4})")
    assert final < 0.7 * initial
    assert final_held < 0.7 * initial_held
