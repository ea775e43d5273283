"""Tables read from fastText models answer unknown words from their character n-grams."""
import json
import shutil
import subprocess

import numpy as np
import pytest

import vecpack
from conftest import run_cli

FASTTEXT = shutil.which("fasttext")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    if not FASTTEXT:
        pytest.skip("the fasttext command is not installed (Debian package fasttext)")
    folder = tmp_path_factory.mktemp("fasttext")
    rng = np.random.default_rng(7)
    vocab = ["the", "cat", "dog", "café", "naïve", "river", "bank"] + [f"w{i}" for i in range(40)]
    lines = (" ".join(rng.choice(vocab, 12)) for _ in range(300))
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run([FASTTEXT, "skipgram", "-input", "corpus.txt", "-output", "model", "-dim", "16", "-minCount", "1",
                    "-epoch", "1", "-minn", "2", "-maxn", "4", "-bucket", "5000", "-thread", "1"],
                   cwd=folder, check=True, capture_output=True)
    return folder / "model.bin"


def test_unknown_words_get_ngram_vectors(model, tmp_path):
    t = vecpack.read(model)
    assert t.has_subwords and "subwords" in repr(t) and t.info()["subwords"]["minn"] == 2
    assert "cat" in t and "cats" not in t and t.find("cats") is None
    cats = t["cats"]
    assert cats.shape == (16,) and np.any(cats != 0)
    assert np.array_equal(t[["cat", "cats"]], np.stack([t["cat"], cats]))

    t.save(tmp_path / "model.vecpack")
    opened = vecpack.open(tmp_path / "model.vecpack")
    assert opened.has_subwords and np.array_equal(opened["cats"], cats)
    assert opened.info() == json.loads(run_cli("inspect", "--json", tmp_path / "model.vecpack"))
    cli = json.loads(run_cli("get", "--json", tmp_path / "model.vecpack", "cats"))
    assert np.array_equal(np.array(cli["cats"], dtype=np.float32), cats)

    words = [w for w, _ in opened.most_similar("cats", topn=3)]
    assert len(words) == 3 and "cats" not in words


def test_tables_without_subwords_raise_key_error(glove):
    assert not glove.has_subwords
    with pytest.raises(KeyError):
        glove["catss"]
