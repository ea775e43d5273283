"""Transforms in codec chains (whiten, pca, rotate, l2norm, matryoshka) and funnel search."""
import numpy as np
import pytest

import vecpack


def clustered(n, d, seed, spread=0.4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d))
    return (centres[rng.integers(0, 10, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def numpy_whitening(x, k):
    """An independent whitening: y = (v - mean) U_k diag(1 / sqrt(s_k)), covariance over n rows."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    s, u = np.linalg.eigh((x64 - mean).T @ (x64 - mean) / len(x64))
    top = np.argsort(s)[::-1][:k]
    w = u[:, top] / np.sqrt(s[top])
    return lambda v: (np.asarray(v, dtype=np.float64) - mean) @ w


def overlap(a, b):
    return np.mean([len(set(r) & set(s)) / len(r) for r, s in zip(a.tolist(), b.tolist())])


def test_whiten_chain_searches_the_whitened_space():
    x, q = clustered(1200, 12, 1), clustered(15, 12, 2)
    t = vecpack.compress(x, "whiten:k=6/f32", metric="l2", train_size=0)
    assert t.spec == "whiten:k=6,eps=0,normalize=off/f32"
    assert t.dim == 12 and t.codes.shape == (1200, 24)
    whiten = numpy_whitening(x, 6)
    wx, wq = whiten(x), whiten(q)
    d2 = ((wq[:, None, :] - wx[None, :, :]) ** 2).sum(-1)
    ids, scores = t.search(q, k=10)
    assert overlap(ids, np.argsort(d2, axis=1, kind="stable")[:, :10]) >= 0.99
    np.testing.assert_allclose(scores, np.take_along_axis(d2, ids, axis=1), rtol=1e-3, atol=1e-3)
    # Decoding goes back to the original space: the projection onto the top 6 principal axes.
    mean = x.astype(np.float64).mean(axis=0)
    _, u = np.linalg.eigh(np.cov(x.T, bias=True))
    u6 = u[:, ::-1][:, :6]
    np.testing.assert_allclose(t[3], mean + (x[3] - mean) @ u6 @ u6.T, atol=1e-4)


def test_pca_int8_chain_reloads_and_searches_identically(tmp_path):
    x, q = clustered(900, 16, 3), clustered(10, 16, 4)
    t = vecpack.compress(x, "pca:k=8/int8", train_size=0)
    path = tmp_path / "pca.vecpack"
    t.save(path)
    back = vecpack.open(path)
    assert back.spec == "pca:k=8/int8" and back.dim == 16 and back.codes.shape == (900, 8)
    a, b = t.search(q, k=5), back.search(q, k=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_matryoshka_keeps_leading_dimensions():
    x = clustered(300, 10, 5)
    t = vecpack.compress(x, "matryoshka:dim=4/f32", train_size=0)
    np.testing.assert_array_equal(t.codes.view(np.float32), x[:, :4])
    np.testing.assert_array_equal(t[7], np.concatenate([x[7, :4], np.zeros(6, np.float32)]))


def test_bad_transform_arguments_are_errors():
    x = clustered(50, 16, 6)
    with pytest.raises(vecpack.SpecError, match=r"k=20 is out of range for input dimension 16 \(1..16\)"):
        vecpack.compress(x, "whiten:k=20/f32")
    with pytest.raises(vecpack.SpecError, match="dim=17"):
        vecpack.compress(x, "matryoshka:dim=17/f32")
    with pytest.raises(vecpack.Error, match="10 training rows for input dimension 16"):
        vecpack.compress(x[:10], "whiten/f32")
    with pytest.raises(vecpack.SpecError, match="is a transform"):
        vecpack.Codec("pca:k=4")


@pytest.mark.parametrize("spec", ["f32", "f16", "int8", "pca/bf16"])
def test_funnel_with_large_shortlists_equals_full_search(spec):
    x, q = clustered(1000, 32, 7, spread=0.6), clustered(5, 32, 8, spread=0.6)
    t = vecpack.compress(x, spec, train_size=0)
    ids, scores = t.search(q, k=10)
    for funnel in ([(8, 1000), (16, 1000)], [(8, 1000), (16, 1000), "full"], "8:1000,16:1000,full"):
        f_ids, f_scores = t.search(q, k=10, funnel=funnel)
        np.testing.assert_array_equal(f_ids, ids)
        np.testing.assert_allclose(f_scores, scores, rtol=1e-5)
    # A stage without a count keeps twice the next stage's; the last truncated one max(100, 10 k).
    default = t.search(q, k=10, funnel=[8, 16])
    explicit = t.search(q, k=10, funnel=[(8, 200), (16, 100), "full"])
    np.testing.assert_array_equal(default[0], explicit[0])


def test_funnel_errors():
    x = clustered(400, 16, 9)
    pq = vecpack.compress(x, "pq:m=4,nbits=4")
    with pytest.raises(vecpack.Error, match="dimension by dimension"):
        pq.search(x[0], k=5, funnel=[(4, 100)])
    t = vecpack.compress(x, "f16")
    with pytest.raises(vecpack.Error, match="exceed the 16 of the codes"):
        t.search(x[0], funnel=[(20, 100)])
    with pytest.raises(vecpack.SpecError):
        t.search(x[0], funnel="8:x")
    with pytest.raises(TypeError):
        t.search(x[0], funnel=3.5)
    with pytest.raises(ValueError):
        t.search(x[0], funnel=[(8, 0)])
