"""gensim KeyedVectors in and out: vecpack.from_gensim(kv) and Table.to_gensim()."""

import numpy as np


def from_gensim(kv, metric="cos"):
    """A float32 table of a gensim KeyedVectors: its rows as stored, its keys in index order (as
    str), and its word counts when it has them (the 'count' attribute that word2vec training and
    load_word2vec_format set). metric: how search() compares rows, 'cos' as gensim does.

    The rows are copied once; compress the table (t.compress('pq:m=25')) to make it small.
    """
    from . import compress

    vectors = np.ascontiguousarray(kv.vectors, dtype=np.float32)
    keys = [str(key) for key in kv.index_to_key]
    if len(set(keys)) != len(keys):
        raise ValueError("from_gensim: two keys of the KeyedVectors are the same text; vecpack keys are unique str")
    counts = None
    if "count" in getattr(kv, "expandos", {}):
        counts = [int(c) for c in kv.expandos["count"][: len(keys)]]
    return compress(vectors, "f32", keys=keys or None, metric=metric, counts=counts)


def to_gensim(self):
    """This table as a gensim KeyedVectors: every row decoded to float32, keys in row order (row
    numbers as str when the table has none), and counts as the 'count' attribute when the
    table has them. Needs gensim (pip install gensim)."""
    from gensim.models import KeyedVectors

    keys = list(self.keys) if self.has_keys else [str(i) for i in range(len(self))]
    kv = KeyedVectors(self.dim, dtype=np.float32)
    kv.add_vectors(keys, np.asarray(self.vectors, dtype=np.float32))
    counts = self.counts
    if counts is not None:  # what set_vecattr does key by key, for every key at once
        kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
        kv.expandos["count"][:] = np.asarray(counts, dtype=np.int64)
    return kv
