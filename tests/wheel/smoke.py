"""What a new user does first with an installed wheel: compress, save, open, search, and the
`vecpack` command. Runs with the wheel's own interpreter and nothing of the source tree.

    python smoke.py WORKDIR
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import vecpack


def check(condition, what):
    if not condition:
        sys.exit(f"smoke: FAILED: {what}")
    print(f"smoke: ok: {what}", flush=True)


def cli(*args):
    proc = subprocess.run(["vecpack", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"smoke: FAILED: vecpack {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def main():
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    package = Path(vecpack.__file__).resolve().parent
    check("site-packages" in package.parts and "PYTHONPATH" not in os.environ,
          f"vecpack {vecpack.__version__} imported from the installed wheel ({package})")

    # Clustered rows: 40 centres, 3,000 rows of 64 dimensions, each row a key.
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 64)).astype(np.float32)
    cluster = rng.integers(0, 40, 3000)
    x = centres[cluster] + 0.3 * rng.normal(size=(3000, 64)).astype(np.float32)
    keys = [f"row{i}" for i in range(len(x))]

    # pq trains k-means through the bundled OpenBLAS; int8 rescoring of a shortlist.
    table = vecpack.compress(x, "pq:m=16", keys=keys, metric="cos", rerank="int8", seed=1)
    path = work / "smoke.vecpack"
    table.save(path)
    opened = vecpack.open(path)
    check(opened.spec == table.spec and len(opened) == 3000 and opened.dim == 64, f"saved and opened {opened.spec}")
    ids, _ = opened.search(x[:200], k=10, rerank=100)
    exact = np.argsort(-(x[:200] / np.linalg.norm(x[:200], axis=1, keepdims=True))
                       @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T, axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    check(recall >= 0.9, f"recall@10 {recall:.3f} of pq:m=16 + int8 rerank against exact search (floor 0.9)")

    # The command line from the same wheel, through HDF5 (bundled too) and the native file.
    np.save(work / "rows.npy", x)
    cli("convert", work / "rows.npy", work / "rows.h5")
    cli("-q", "compress", work / "rows.h5", "-o", work / "rows.int8.vecpack", "--codec", "int8")
    info = cli("inspect", work / "rows.int8.vecpack")
    check("int8" in info and "3000" in info.replace(",", ""), "vecpack convert npy -> hdf5, compress int8, inspect")
    found = json.loads(cli("search", path, "row5", "-k", "3", "--json"))[0]["neighbors"]
    rows = [n["row"] for n in found]
    check(len(rows) == 3 and 5 not in rows and all(cluster[r] == cluster[5] for r in rows),
          f"vecpack search row5 in the module's file: {[n['key'] for n in found]}, all of row5's cluster")
    cli("verify", path)
    check(cli("--version").split()[:2] == ["vecpack", vecpack.__version__], "vecpack --version matches the module")


if __name__ == "__main__":
    main()
