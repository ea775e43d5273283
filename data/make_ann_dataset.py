"""Turns the wink-embeddings GloVe JSON into GloVe text and an ann-benchmarks HDF5 file.

The split is seeded (10,000 test words), and neighbours are the exact cosine top-100 of each
test word among the train words, best first.
"""
import json
import os
import sys

import h5py
import numpy as np


def main(src: str, out: str) -> None:
    data = json.load(open(src))
    words, table = data["words"], data["vectors"]
    x = np.asarray([table[w][:100] for w in words], dtype=np.float32)
    tmp = os.path.join(out, "glove.6B.100d.341k.txt.part")
    with open(tmp, "w", encoding="utf-8") as f:
        for w in words:
            f.write(w + " " + " ".join(repr(v) for v in table[w][:100]) + "\n")
    os.replace(tmp, os.path.join(out, "glove.6B.100d.341k.txt"))

    rng = np.random.default_rng(20261122)
    perm = rng.permutation(len(words))
    test_idx, train_idx = np.sort(perm[:10000]), np.sort(perm[10000:])
    train, test = x[train_idx], x[test_idx]
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = test / np.linalg.norm(test, axis=1, keepdims=True)
    k = 100
    neighbors = np.empty((len(test), k), dtype=np.int32)
    distances = np.empty((len(test), k), dtype=np.float32)
    for s in range(0, len(test), 500):
        sims = qn[s:s + 500] @ tn.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        ps = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        neighbors[s:s + 500] = np.take_along_axis(part, order, axis=1)
        distances[s:s + 500] = 1.0 - np.take_along_axis(ps, order, axis=1)
    tmp = os.path.join(out, "glove-100-angular.hdf5.part")
    with h5py.File(tmp, "w") as h:
        h.attrs["distance"] = "angular"
        h.attrs["point_type"] = "float"
        h.create_dataset("train", data=train)
        h.create_dataset("test", data=test)
        h.create_dataset("neighbors", data=neighbors)
        h.create_dataset("distances", data=distances)
        strings = h5py.string_dtype("utf-8")
        h.create_dataset("words_train", data=np.array([words[i] for i in train_idx], dtype=object), dtype=strings)
        h.create_dataset("words_test", data=np.array([words[i] for i in test_idx], dtype=object), dtype=strings)
    os.replace(tmp, os.path.join(out, "glove-100-angular.hdf5"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
