"""The parts of vecpack.Table written in Python: gensim-style queries and repr."""

import os

import numpy as np


def _unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def _as_terms(words):
    """None, one word or vector, or a list of them -> a list."""
    if words is None:
        return []
    if isinstance(words, str) or (isinstance(words, np.ndarray) and words.ndim == 1):
        return [words]
    return list(words)


def most_similar(self, positive=None, negative=None, topn=10, *, threads=0):
    """The rows nearest by cosine to the mean of positive minus negative words, as gensim.

    positive, negative: a word, a vector, or a list of them. Each is scaled to unit length;
    the query is the mean of the positive ones and of the negated negative ones. Words given
    are left out of the answer.

    Returns [(key, cosine), ...] best first (row numbers instead of keys when the table has
    none); with topn=None, the cosine of every row as an array in row order.
    """
    positive, negative = _as_terms(positive), _as_terms(negative)
    if not positive and not negative:
        raise ValueError("most_similar: give at least one positive or negative word or vector")
    terms, skipped = [], set()
    for sign, items in ((1.0, positive), (-1.0, negative)):
        for item in items:
            if isinstance(item, str):
                row = self.find(item)
                if row is not None:
                    skipped.add(row)
                terms.append(sign * _unit(self[item]))
            else:
                terms.append(sign * _unit(item))
    query = _unit(np.mean(terms, axis=0)).astype(np.float32)
    if topn is None:
        ids, scores = self.search(query, k=max(len(self), 1), metric="cos", threads=threads)
        everything = np.zeros(len(self), dtype=np.float32)
        everything[ids[ids >= 0]] = scores[ids >= 0]
        return everything
    if topn <= 0 or len(self) == 0:
        return []
    k = min(len(self), topn + len(skipped))
    ids, scores = self.search(query, k=k, metric="cos", threads=threads)
    keys = self.keys
    found = []
    for row, score in zip(ids.tolist(), scores.tolist()):
        if row < 0 or row in skipped:
            continue
        found.append((keys[row] if keys is not None else row, score))
        if len(found) == topn:
            break
    return found


def similarity(self, a, b):
    """Cosine similarity of two words (or vectors) of this table."""
    va = np.asarray(self[a] if isinstance(a, str) else a, dtype=np.float64)
    vb = np.asarray(self[b] if isinstance(b, str) else b, dtype=np.float64)
    norms = np.linalg.norm(va) * np.linalg.norm(vb)
    return float(va @ vb / norms) if norms > 0 else 0.0


def human_bytes(count):
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


def table_repr(self):
    info = self.info()
    in_memory = ("codes", "codec_parameters", "keys", "subwords")
    size = info["bytes"]["file"] or sum(info["bytes"].get(part, 0) for part in in_memory)
    parts = [f"{info['rows']} x {info['dim']}", self.spec, self.metric, "keys" if self.has_keys else "no keys"]
    if self.has_subwords:
        parts.append("subwords")
    parts.append(human_bytes(size))
    if self.path is not None:
        parts.append(repr(os.path.basename(self.path)))
    return "<vecpack.Table " + ", ".join(parts) + ">"


def extend(table_class):
    """Adds the methods above to the compiled Table class."""
    from ._gensim import to_gensim

    table_class.to_gensim = to_gensim
    table_class.most_similar = most_similar
    table_class.similarity = similarity
    table_class.__repr__ = table_repr
