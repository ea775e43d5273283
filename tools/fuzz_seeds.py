#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into tests/fuzz/corpus/TARGET/ (seed-* files).

Small valid files of every kind each reader accepts, made with the built vecpack CLI and
numpy, so that fuzzing starts from deep inside the readers. The seeds are kept in the
repository (the replay tests run them on a clean clone); run this again only to change them:

    .venv/bin/python tools/fuzz_seeds.py [--bin build/vecpack]

Inputs that once crashed a reader (crash-*, kept by tools/fuzz.sh) are left alone.
"""
import argparse
import gzip
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=str(ROOT / "build" / "vecpack"), help="the vecpack CLI")
    args = parser.parse_args()
    seeds = Seeds(args.bin)
    try:
        seeds.make()
    finally:
        shutil.rmtree(seeds.tmp, ignore_errors=True)
    for target, files in sorted(seeds.out.items()):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in files.items():
            (folder / f"seed-{name}").write_bytes(data)
        total = sum(len(d) for d in files.values())
        print(f"{target}: {len(files)} seeds, {total} bytes")


def rows(n, d, seed):
    rng = np.random.default_rng(seed)
    # Short decimal values keep text seeds small.
    return np.round(rng.normal(size=(n, d)), 3).astype(np.float32)


def text_lines(keys, x, header=None, trailing=""):
    lines = [header] if header else []
    for k, r in zip(keys, x):
        lines.append(k + " " + " ".join(f"{v:g}" for v in r) + trailing)
    return "\n".join(lines) + "\n"


def sections(data):
    """The sections of a .vecpack file: {type: bytes} (docs/FORMAT.md)."""
    table_offset, count = struct.unpack_from("<QI", data, 24)
    out = {}
    for i in range(count):
        kind, _, offset, length, _ = struct.unpack_from("<4sIQQQ", data, table_offset + 32 * i)
        out[kind.decode()] = data[offset:offset + length]
    return out


def fasttext_model(dim=4, words=("</s>", "cat", "h\xe9llo"), labels=("__label__x",), bucket=8, minn=2, maxn=3,
                   prune=None, quantized=False, qnorm=False, version=12, seed=1):
    """A tiny fastText model in fastText's binary layout (as tests/formats/test_fasttext.cc)."""
    rng = np.random.default_rng(seed)
    b = bytearray()
    b += struct.pack("<ii", 793712314, version)
    b += struct.pack("<12i", dim, 5, 1, 1, 5, 1, 2, 2, bucket, minn, maxn, 100)
    b += struct.pack("<d", 1e-4)
    b += struct.pack("<iiiqq", len(words) + len(labels), len(words), len(labels), 1000,
                     -1 if prune is None else len(prune))
    for w in words:
        b += w.encode("utf-8") + b"\0" + struct.pack("<qB", 7, 0)
    for w in labels:
        b += w.encode("utf-8") + b"\0" + struct.pack("<qB", 3, 1)
    for bucket_index, row in prune or []:
        b += struct.pack("<ii", bucket_index, row)
    ngram_rows = bucket if prune is None else max([r for _, r in prune] + [-1]) + 1
    n = len(words) + ngram_rows
    b += struct.pack("<B", 1 if quantized else 0)
    if not quantized:
        b += struct.pack("<qq", n, dim)
        b += np.round(rng.uniform(-1, 1, size=(n, dim)), 2).astype("<f4").tobytes()
    else:
        nsubq, dsub = 2, (dim + 1) // 2
        lastdsub = dim - dsub
        b += struct.pack("<Bqqi", 1 if qnorm else 0, n, dim, n * nsubq)
        b += rng.integers(0, 256, size=n * nsubq, dtype=np.uint8).tobytes()
        b += struct.pack("<4i", dim, nsubq, dsub, lastdsub)
        b += np.round(rng.uniform(-1, 1, size=dim * 256), 2).astype("<f4").tobytes()
        if qnorm:
            b += rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
            b += struct.pack("<4i", 1, 1, 1, 1)
            b += np.round(rng.uniform(0.5, 1, size=256), 2).astype("<f4").tobytes()
    b += struct.pack("<Bqq", 0, 1, dim) + np.full(dim, 0.5, "<f4").tobytes()  # the output matrix
    return bytes(b)


class Seeds:
    def __init__(self, binary):
        if not Path(binary).exists():
            sys.exit(f"fuzz_seeds: the vecpack CLI is not built ({binary}); run tools/setup.sh")
        self.bin = binary
        self.tmp = Path(tempfile.mkdtemp(prefix="vecpack-seeds-"))
        self.out = {}

    def add(self, target, name, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.out.setdefault(target, {})[name] = data

    def vp(self, *args):
        subprocess.run([self.bin, "-q", *map(str, args)], check=True, stdin=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def file(self, name, data):
        path = self.tmp / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def make(self):
        keys = ["the", "king", "queen", ",", "h\u00e9llo", "a b"]
        x = rows(6, 4, 1)
        plain = keys[:4] + ["hello", "z"]

        # word2vec text
        w2v = text_lines(plain, x, header="6 4")
        self.add("word2vec_text", "basic.vec", w2v)
        self.add("word2vec_text", "fasttext-trailing.vec", text_lines(plain, x, header="6 4", trailing=" "))
        self.add("word2vec_text", "bom-crlf.vec", "\ufeff" + w2v.replace("\n", "\r\n"))
        self.add("word2vec_text", "utf8-dup.vec", text_lines(["h\u00e9llo", "x", "x"], x[:3], header="3 4"))
        self.add("word2vec_text", "short-count.vec", text_lines(plain[:3], x[:3], header="2 4"))
        self.add("word2vec_text", "gzip.vec.gz", gzip.compress(w2v.encode(), mtime=0))

        # word2vec binary, as the CLI writes it and without the newlines (gensim)
        src = self.file("w.vec", w2v)
        binary = self.tmp / "w.bin"
        self.vp("convert", src, binary)
        data = binary.read_bytes()
        self.add("word2vec_binary", "basic.bin", data)
        header, rest = data.split(b"\n", 1)
        no_newlines = bytearray(header + b"\n")
        pos = 0
        while pos < len(rest):
            space = rest.index(b" ", pos)
            no_newlines += rest[pos:space + 1 + 16]
            pos = space + 1 + 16 + 1
        self.add("word2vec_binary", "gensim.bin", bytes(no_newlines))

        # GloVe
        self.add("glove", "basic.txt", text_lines(plain, x))
        self.add("glove", "spaces-in-keys.txt", text_lines(keys, x))
        self.add("glove", "crlf.txt", text_lines(plain, x).replace("\n", "\r\n"))
        self.add("glove", "exponents.txt", "a 1e-3 -2E+2 inf\nb 0 +1 nan\n")

        # fastText models: dense, pruned, quantized (with and without norms), an old version
        self.add("fasttext", "dense.bin", fasttext_model())
        self.add("fasttext", "pruned.bin", fasttext_model(prune=[(1, 0), (5, 1), (5, 2), (7, 0)]))
        self.add("fasttext", "quantized.ftz", fasttext_model(dim=4, bucket=4, quantized=True))
        self.add("fasttext", "qnorm.ftz", fasttext_model(dim=3, bucket=2, quantized=True, qnorm=True,
                                                         prune=[(0, 0), (1, 1)]))
        self.add("fasttext", "v11-no-ngrams.bin", fasttext_model(version=11, maxn=0, bucket=0))

        # .npy
        for name, array in {
            "f32.npy": x,
            "f16.npy": x.astype(np.float16),
            "f64-fortran.npy": np.asfortranarray(x.astype(np.float64)),
            "big-endian.npy": x.astype(">f4"),
            "1d.npy": x[0],
        }.items():
            path = self.tmp / name
            np.save(path, array)
            self.add("npy", name, path.read_bytes())
        path = self.tmp / "v2.npy"
        with open(path, "wb") as f:
            np.lib.format.write_array(f, x, version=(2, 0))
        self.add("npy", "v2.npy", path.read_bytes())

        # .vecpack: every codec, keys or not, rerank rows, a subword pool (pruned and not)
        glove = self.file("g.txt", text_lines(keys, x))
        f32 = self.tmp / "f32.vecpack"
        self.vp("convert", glove, f32)
        made = {"f32-keys.vecpack": f32}
        for codec in ["f16", "bf16", "int8"]:
            out = self.tmp / f"{codec}.vecpack"
            self.vp("compress", f32, "-o", out, "--codec", codec)
            made[f"{codec}-keys.vecpack"] = out
        # Codecs with trained parameters and transforms, where this vecpack has them.
        wide = self.tmp / "wide.vecpack"
        self.vp("convert", self.file("wide.txt", text_lines([f"k{i}" for i in range(40)], rows(40, 8, 3))), wide)
        for spec in ["pq:m=2,nbits=4", "pq:m=4,nbits=4,sdc=on", "pq:m=2,nbits=4,loss=aniso", "rq:m=2,beam=2",
                     "opq:m=2,iterations=2/pq:m=2,nbits=4",
                     "whiten:k=4/int8", "pca:k=3/f16", "rotate/f32", "binary", "binary:score=asym,center=off",
                     "rbin:bits=3", "rabitq", "itq:k=6/binary", "qr:m=8,order=learned", "hash:rows=8",
                     "hash:rows=8,weights=off,key=string", "mixdim:budget=64,blocks=3,order=file",
                     "subword:rows=32,minn=2,maxn=3,keep=4", "subword:rows=32,minn=2,maxn=3,keep=4,values=int8"]:
            out = self.tmp / (spec.replace(":", "-").replace("/", "+").replace(",", "-") + ".vecpack")
            try:
                self.vp("compress", wide, "-o", out, "--codec", spec)
            except subprocess.CalledProcessError:
                print(f"fuzz_seeds: codec {spec} is not available; no seed for it", file=sys.stderr)
                continue
            made[out.name] = out
        # Row counts (FREQ) that rank the rows otherwise than the table: mixdim stores the ranks.
        counts = self.file("counts.txt", "".join(f"k{i} {1000 - i * 7 % 13}\n" for i in range(40)))
        out = self.tmp / "mixdim-counts.vecpack"
        self.vp("compress", wide, "-o", out, "--codec", "mixdim:budget=64,blocks=3", "--counts", counts)
        made[out.name] = out
        npy = self.tmp / "x.npy"
        np.save(npy, rows(5, 3, 2))
        nokeys = self.tmp / "nokeys.vecpack"
        self.vp("convert", npy, nokeys)
        made["f32-nokeys.vecpack"] = nokeys
        l2 = self.tmp / "l2.vecpack"
        self.vp("compress", nokeys, "-o", l2, "--codec", "f16", "--metric", "l2")
        made["f16-l2.vecpack"] = l2
        rerank = self.tmp / "rerank.vecpack"
        self.vp("compress", f32, "-o", rerank, "--codec", "int8", "--rerank", "f16")
        made["int8-rerank.vecpack"] = rerank
        # Inverted-file partitions: lists, row ids, centroids and offsets, and a recall curve.
        for name, spec, extra in [("ivf-pq-rerank.vecpack", "ivf:lists=4/pq:m=2,nbits=4", ["--rerank", "int8"]),
                                  ("ivf-residual-int8.vecpack", "ivf:lists=3,residual=on/int8", ["--metric", "ip"])]:
            out = self.tmp / name
            self.vp("compress", wide, "-o", out, "--codec", spec, *extra)
            made[name] = out
        for name, model in {"subwords.vecpack": fasttext_model(bucket=4),
                            "subwords-pruned.vecpack": fasttext_model(prune=[(1, 0), (5, 1)])}.items():
            src = self.file(name + ".bin", model)
            out = self.tmp / name
            self.vp("convert", src, out)
            made[name] = out
        for name, path in made.items():
            data = path.read_bytes()
            self.add("vecpack", name, data)
            for kind, blob in sections(data).items():
                if kind in ("CODC", "SUBC", "RRKC"):
                    self.add("codec_params", f"{name.replace('.vecpack', '')}-{kind}", blob)

        # codec specs: valid, and near misses that take the error paths
        for i, spec in enumerate(["f32", "f16", "bf16", "int8", " int8 ", "int8:", "f16/int8", "f32:1",
                                  "pq:m=4", "pq:m=4,nbits=8", "opq:m=4/pq:m=4", "whiten:k=8/int8", "int9",
                                  "int8:foo=1,bar", "/", "a:b=c/d:e=f,g=h", "pca:k=3/f16", "rotate:seed=7/int8",
                                  "whiten:k=4,eps=0.1,normalize=on/pq:m=2,nbits=4,sdc=on"]):
            self.add("spec", f"{i:02d}", spec)

        # HDF5: tables with and without keys, an ann-benchmarks dataset, chunked float64.
        self.hdf5_seeds()
        # roundtrip: rows, dim and a gzip flag, then per row a key length, its bytes and the values.
        rng = np.random.default_rng(5)
        for i in range(6):
            n, d = int(rng.integers(1, 8)), int(rng.integers(1, 8))
            blob = bytes([n - 1, d - 1, i % 2])
            for _ in range(n):
                key = "".join(rng.choice(list("abcdefgh\u00e9\u4e2d"), int(rng.integers(1, 4)))).encode()
                values = rng.choice([0.0, -0.0, 1e-40, 3.0, float(rng.normal())], d).astype("<f4")
                blob += bytes([len(key)]) + key + values.tobytes()
            self.add("roundtrip", f"table-{i}", blob)

    def hdf5_seeds(self):
        try:
            import h5py
        except ImportError:
            print("fuzz_seeds: h5py is not installed; no HDF5 seeds", file=sys.stderr)
            return
        rng = np.random.default_rng(1)
        keyed = self.tmp / "keyed.h5"
        self.vp("convert", self.file("keyed.txt", text_lines(list("abcdef"), rows(6, 4, 3), "6 4")), keyed)
        self.add("hdf5", "keyed.h5", keyed.read_bytes())
        unkeyed = self.tmp / "unkeyed.h5"
        npy = self.tmp / "unkeyed.npy"
        np.save(npy, rows(5, 3, 4))
        self.vp("convert", npy, unkeyed)
        self.add("hdf5", "unkeyed.h5", unkeyed.read_bytes())
        ann = self.tmp / "ann.h5"
        with h5py.File(ann, "w") as f:
            f.attrs["distance"] = "angular"
            f["train"] = rng.standard_normal((8, 4)).astype(np.float32)
            f["test"] = rng.standard_normal((2, 4)).astype(np.float32)
            f["neighbors"] = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
            f["distances"] = rng.random((2, 3)).astype(np.float32)
        self.add("hdf5", "ann.h5", ann.read_bytes())
        chunked = self.tmp / "chunked.h5"
        with h5py.File(chunked, "w") as f:
            f.create_dataset("train", data=rng.standard_normal((9, 4)), chunks=(3, 4), compression="gzip")
            f.create_dataset("words_train", data=np.array(list("xyzwvutsr"), dtype=h5py.string_dtype("utf-8")))
        self.add("hdf5", "chunked-f64.h5", chunked.read_bytes())


if __name__ == "__main__":
    main()
