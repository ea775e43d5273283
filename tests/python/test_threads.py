"""Searches from many Python threads at once (the GIL is released) give the sequential answers."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import vecpack


def test_parallel_searches_match_sequential(glove_int8_file, glove):
    tables = [vecpack.open(glove_int8_file), glove]
    rng = np.random.default_rng(4)
    jobs = [(tables[i % 2], rng.normal(size=(16, 100)).astype(np.float32), metric)
            for i in range(32) for metric in (["cos", "l2"][i % 2],)]

    def run(job):
        table, queries, metric = job
        return table.search(queries, k=10, metric=metric)

    expected = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            got = list(pool.map(run, jobs))
            for (ids, scores), (want_ids, want_scores) in zip(got, expected):
                assert np.array_equal(ids, want_ids) and np.array_equal(scores, want_scores)


def test_parallel_keyed_lookups_and_encoding(glove):
    codec = vecpack.Codec("int8").train(glove.vectors)
    words = glove.keys[:2000]

    def work(offset):
        rows = glove[words[offset : offset + 200]]
        return codec.encode(rows), glove.most_similar(words[offset], topn=3)

    expected = [work(offset) for offset in range(0, 2000, 200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(work, range(0, 2000, 200)))
    for (codes, similar), (want_codes, want_similar) in zip(got, expected):
        assert np.array_equal(codes, want_codes) and similar == want_similar
