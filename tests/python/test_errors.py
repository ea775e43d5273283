"""Every vecpack error reaches Python as its own class, with the library's message."""
import errno

import numpy as np
import pytest

import vecpack


def test_hierarchy():
    assert issubclass(vecpack.SpecError, (vecpack.Error, ValueError))
    assert issubclass(vecpack.FormatError, vecpack.Error) and issubclass(vecpack.FormatError, ValueError)
    assert issubclass(vecpack.ParseError, vecpack.Error) and issubclass(vecpack.ParseError, ValueError)
    assert issubclass(vecpack.IoError, vecpack.Error) and issubclass(vecpack.IoError, OSError)
    assert issubclass(vecpack.NotFoundError, vecpack.Error) and issubclass(vecpack.NotFoundError, KeyError)
    assert issubclass(vecpack.Error, Exception)


def test_bad_spec():
    with pytest.raises(ValueError) as caught:
        vecpack.Codec("int9")
    assert isinstance(caught.value, vecpack.SpecError)
    assert "did you mean 'int8'" in str(caught.value)
    with pytest.raises(vecpack.SpecError, match="bits"):
        vecpack.compress(np.ones((4, 3)), "int8:bits=4")
    with pytest.raises(vecpack.SpecError):
        vecpack.compress(np.ones((4, 3)), "f32", metric="manhattan")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.vecpack"
    with pytest.raises(OSError) as caught:
        vecpack.open(missing)
    error = caught.value
    assert isinstance(error, vecpack.IoError) and error.errno == errno.ENOENT
    assert error.filename == str(missing) and str(missing) in str(error) and "No such file" in str(error)
    with pytest.raises(OSError) as caught:
        vecpack.read(tmp_path / "nope.txt")
    assert caught.value.errno == errno.ENOENT


def test_damaged_files(glove_file, tmp_path):
    data = glove_file.read_bytes()
    for cut in (10, 64, len(data) // 2):
        (tmp_path / "cut.vecpack").write_bytes(data[:cut])
        with pytest.raises(vecpack.FormatError):
            vecpack.open(tmp_path / "cut.vecpack")
    (tmp_path / "text.vecpack").write_bytes(b"the 0.1 0.2\n")
    with pytest.raises(ValueError, match="not a .vecpack file") as caught:
        vecpack.open(tmp_path / "text.vecpack")
    assert isinstance(caught.value, vecpack.FormatError)


def test_unknown_key(glove_file):
    t = vecpack.open(glove_file)
    with pytest.raises(KeyError) as caught:
        t["no-such-word"]
    assert isinstance(caught.value, vecpack.NotFoundError) and "no-such-word" in str(caught.value)
    with pytest.raises(KeyError):
        t[["king", "no-such-word"]]
    with pytest.raises(vecpack.NotFoundError):
        vecpack.compress(np.ones((2, 2)), "f32")["a"]  # a table without keys


def test_parse_error_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2 3\nb 4 x 6\n")
    with pytest.raises(vecpack.ParseError) as caught:
        vecpack.read(path, format="glove")
    assert caught.value.line == 2 and "bad.txt:2" in str(caught.value)
    path.write_text("a 1 2\nb nan 3\n")
    with pytest.raises(vecpack.ParseError):
        vecpack.read(path)
    assert len(vecpack.read(path, allow_nan=True)) == 2


def test_memory_limit_is_a_memory_error(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((1000, 64), np.float32))  # 250 KiB as f32
    for limit in (100_000, "100K"):
        with pytest.raises(vecpack.MemoryLimitError, match=r"the table would need 250.0 KiB \(shape \(1000, 64\) as f32\)"):
            vecpack.read(path, max_memory=limit)
    with pytest.raises(MemoryError):
        vecpack.read(path, max_memory=1000)
    assert len(vecpack.read(path, max_memory="1M")) == 1000
    assert len(vecpack.read(path, max_memory="none")) == 1000
    assert len(vecpack.read(path, max_memory=None)) == 1000
    with pytest.raises(vecpack.SpecError, match="memory size 'lots'"):
        vecpack.read(path, max_memory="lots")
    with pytest.raises(ValueError, match="max_memory must be a positive"):
        vecpack.read(path, max_memory=0)


def test_generic_errors_are_vecpack_errors(tmp_path):
    with pytest.raises(vecpack.Error, match="format"):
        vecpack.read(tmp_path / "no-extension")
    with pytest.raises(vecpack.Error, match="unknown format"):
        vecpack.write(vecpack.compress(np.ones((2, 2)), "f32"), tmp_path / "x.txt", format="nope")
