"""fastText models read by vecpack give the vectors fastText itself gives, for known and unknown words.

Needs the fasttext command (Debian package fasttext); the Python module fasttext (PyPI fasttext-wheel),
when installed, adds a comparison at full precision.
"""
import gzip
import json
import random
import shutil
import subprocess

import numpy as np
import pytest

FASTTEXT = shutil.which("fasttext")
NOT_FOUND = 7  # vecpack's exit code for a key that is not there (tools/cli_common.h)

KNOWN = ["café", "naïve", "日本", "cat", "river", "w1", "</s>"]
UNKNOWN = ["cafés", "naïvety", "zzzq", "日本語", "Straße"]

# print-word-vectors prints 5 significant digits: allow that rounding on top of 1e-5.
PRINTED = dict(rtol=5e-5, atol=1e-5)


def require_fasttext():
    if not FASTTEXT:
        pytest.skip("the fasttext command is not installed (Debian package fasttext)")


def fasttext(*args, cwd, stdin=None):
    proc = subprocess.run([FASTTEXT, *map(str, args)], cwd=cwd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"fasttext {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def write_corpus(path, seed, lines, labelled=False):
    """Seeded text of a few thousand tokens, with accented and CJK words."""
    rng = random.Random(seed)
    vocab = ["the", "a", "cat", "dog", "café", "naïve", "日本", "東京", "river", "bank", "money", "water",
             "résumé", "über", "straße", "fish", "tree"] + [f"w{i}" for i in range(60)]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            words = [rng.choice(vocab) for _ in range(12)]
            label = f"__label__{'pet' if 'cat' in words or 'dog' in words else 'other'} " if labelled else ""
            f.write(label + " ".join(words) + "\n")


def fasttext_vectors(model, words, cwd):
    """Word vectors as `fasttext print-word-vectors` prints them (words read from stdin)."""
    out = fasttext("print-word-vectors", model, cwd=cwd, stdin="\n".join(words) + "\n")
    vectors = {}
    for line in out.splitlines():
        fields = line.split()
        vectors[fields[0]] = np.array(fields[1:], dtype=np.float64)
    assert sorted(vectors) == sorted(words)
    return vectors


def vecpack_vectors(vp, table, words):
    got = json.loads(vp("get", "--json", table, *words).out)
    return {word: np.array(values, dtype=np.float64) for word, values in got.items()}


def module_vectors(model, words):
    """Full-precision vectors from the fastText Python module, or None without it."""
    try:
        import fasttext as fasttext_module
    except ImportError:
        return None
    loaded = fasttext_module.load_model(str(model))
    return {word: np.array(loaded.get_word_vector(word), dtype=np.float64) for word in words}


def compare(ours, theirs, **tolerance):
    for word, expected in theirs.items():
        np.testing.assert_allclose(ours[word], expected, err_msg=word, **tolerance)


@pytest.fixture(scope="module")
def skipgram(tmp_path_factory):
    require_fasttext()
    folder = tmp_path_factory.mktemp("skipgram")
    write_corpus(folder / "corpus.txt", seed=7, lines=400)
    fasttext("skipgram", "-input", "corpus.txt", "-output", "model", "-dim", 16, "-minCount", 1, "-epoch", 1,
             "-minn", 2, "-maxn", 4, "-bucket", 5000, "-thread", 1, cwd=folder)
    return folder


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    """A supervised model and its quantized .ftz (norms quantized, pool pruned, dsub 3 so the
    last sub-quantizer is narrower)."""
    require_fasttext()
    folder = tmp_path_factory.mktemp("supervised")
    write_corpus(folder / "labelled.txt", seed=3, lines=600, labelled=True)
    fasttext("supervised", "-input", "labelled.txt", "-output", "sup", "-dim", 16, "-minCount", 1, "-epoch", 2,
             "-minn", 2, "-maxn", 4, "-bucket", 5000, "-thread", 1, cwd=folder)
    # quantize needs at least 256 rows to train its codebooks.
    fasttext("quantize", "-input", "labelled.txt", "-output", "sup", "-qnorm", "-cutoff", 300, "-dsub", 3,
             cwd=folder)
    return folder


def test_skipgram_bin_and_vec_match_fasttext(vp, skipgram):
    model = skipgram / "model.bin"
    vp("-q", "convert", model, skipgram / "bin.vecpack")
    info = json.loads(vp("inspect", "--json", skipgram / "bin.vecpack").out)
    assert info["source"]["format"] == "fasttext"

    words = KNOWN + UNKNOWN
    theirs = fasttext_vectors(model, words, skipgram)
    ours = vecpack_vectors(vp, skipgram / "bin.vecpack", words)
    compare(ours, theirs, **PRINTED)
    exact = module_vectors(model, words)
    if exact is not None:
        compare(ours, exact, rtol=1e-6, atol=1e-9)

    # The .vec fastText wrote beside the model holds the same known-word vectors.
    vp("-q", "convert", "--from", "fasttext-vec", skipgram / "model.vec", skipgram / "vec.vecpack")
    compare(vecpack_vectors(vp, skipgram / "vec.vecpack", KNOWN), {w: theirs[w] for w in KNOWN}, **PRINTED)
    # ... but no n-grams: an unknown word is not found there.
    assert vp("get", skipgram / "vec.vecpack", "zzzq", check=False).code == NOT_FOUND


def test_gzip_model_reads_like_the_plain_one(vp, skipgram):
    with open(skipgram / "model.bin", "rb") as plain, gzip.open(skipgram / "model.bin.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    vp("-q", "convert", skipgram / "model.bin", skipgram / "plain.vecpack")
    vp("-q", "convert", skipgram / "model.bin.gz", skipgram / "gz.vecpack")
    words = KNOWN + UNKNOWN
    plain = vecpack_vectors(vp, skipgram / "plain.vecpack", words)
    packed = vecpack_vectors(vp, skipgram / "gz.vecpack", words)
    compare(packed, plain, rtol=0, atol=0)


def test_unknown_word_vectors_survive_conversion(vp, skipgram, tmp_path):
    """A .vecpack converted from a fastText model answers for words it has no row for."""
    out = tmp_path / "model.vecpack"
    vp("-q", "convert", skipgram / "model.bin", out)
    theirs = fasttext_vectors(skipgram / "model.bin", ["naïvety"], skipgram)
    got = vp("get", out, "naïvety").out.split()
    assert got[0] == "naïvety"
    np.testing.assert_allclose(np.array(got[1:], dtype=np.float64), theirs["naïvety"], **PRINTED)


def test_supervised_and_quantized_models_match_fasttext(vp, supervised):
    words = KNOWN + UNKNOWN
    for name in ["sup.bin", "sup.ftz"]:
        model = supervised / name
        table = supervised / (name + ".vecpack")
        vp("-q", "convert", model, table)
        theirs = fasttext_vectors(model, words, supervised)
        ours = vecpack_vectors(vp, table, words)
        compare(ours, theirs, **PRINTED)
        exact = module_vectors(model, words)
        if exact is not None:
            compare(ours, exact, rtol=1e-6, atol=1e-9)
