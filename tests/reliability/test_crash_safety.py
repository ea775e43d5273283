"""Crash safety of every write (docs/RELIABILITY.md).

A writer killed with SIGKILL at any moment leaves the destination either as it was, byte for
byte, or as the complete new file, which verifies; never a mixture. A writer that runs out of
space (RLIMIT_FSIZE, as a full disk: write() fails with EFBIG) exits non-zero with a message
naming the path and leaves the destination untouched.
"""
import json
import os
import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

BIN = os.environ.get("VECPACK_BIN", str(Path(__file__).resolve().parents[2] / "build" / "vecpack"))
TRIALS = 20


def vp(*args, check=True, **kwargs):
    proc = subprocess.run([BIN, "-q", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"vecpack {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def temp_files(dest):
    return sorted(dest.parent.glob(dest.name + ".tmp-*"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A few-MB table as GloVe text and as .vecpack, and an older, different destination."""
    if not Path(BIN).exists():
        pytest.skip(f"the vecpack binary is not built ({BIN})")
    d = tmp_path_factory.mktemp("crash")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(12000, 64)).astype(np.float32)
    text = d / "table.txt"
    with open(text, "w") as f:
        for i, row in enumerate(x):
            f.write(f"w{i} " + " ".join(f"{v:.6f}" for v in row) + "\n")
    table = d / "table.vecpack"
    vp("convert", text, table)
    old_text = d / "old.txt"
    with open(old_text, "w") as f:
        for i in range(50):
            f.write(f"old{i} " + " ".join("0.5" for _ in range(8)) + "\n")
    old = d / "old.vecpack"
    vp("convert", old_text, old)
    return {"text": text, "table": table, "old": old, "rows": len(x)}


def writers(src, dest):
    """The write commands under test: a text conversion and an int8 compression."""
    return [
        ("convert", ["convert", src["text"], dest], "f32"),
        ("compress", ["compress", src["table"], "-o", dest, "--codec", "int8"], "int8"),
    ]


def inspect(path):
    return json.loads(vp("inspect", "--json", path).stdout)


def test_sigkill_leaves_old_or_complete_new_file(sources, tmp_path):
    dest = tmp_path / "dest.vecpack"
    old_bytes = sources["old"].read_bytes()
    rng = random.Random(20240601)
    outcomes = {"old": 0, "new": 0}
    leftovers = 0
    for name, args, spec in writers(sources, dest):
        # How long an undisturbed write takes: the kill delays span it.
        dest.write_bytes(old_bytes)
        start = time.monotonic()
        vp(*args)
        duration = time.monotonic() - start
        for trial in range(TRIALS // 2):
            dest.write_bytes(old_bytes)
            delay = rng.uniform(0, duration * 1.1)
            proc = subprocess.Popen([BIN, "-q", *map(str, args)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            now = dest.read_bytes()
            if now == old_bytes:
                outcomes["old"] += 1
            else:
                check = vp("verify", dest, check=False)
                assert check.returncode == 0, (
                    f"{name} killed after {delay:.3f}s left a destination that is neither the old file "
                    f"nor a sound new one:\n{check.stdout}{check.stderr}")
                info = inspect(dest)
                assert info["rows"] == sources["rows"] and info["codec"] == spec, info
                outcomes["new"] += 1
            stale = temp_files(dest)
            leftovers += len(stale)
            for path in stale:
                path.unlink()
    print(f"\ncrash safety: {TRIALS} writers killed with SIGKILL: {outcomes['old']} left the old file, "
          f"{outcomes['new']} the complete new one; {leftovers} temporary files were left behind")
    assert outcomes["old"] + outcomes["new"] == TRIALS


def limit_file_size(limit):
    def apply():
        # Ignored SIGXFSZ turns a write past the limit into an EFBIG error, as a full disk does.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("output", ["dest.vecpack", "dest.npy", "dest.txt.gz"])
def test_full_disk_fails_cleanly_and_leaves_destination(sources, tmp_path, output):
    dest = tmp_path / output
    old = b"the previous contents of the destination\n"
    dest.write_bytes(old)
    proc = subprocess.run([BIN, "-q", "convert", str(sources["text"]), str(dest)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, preexec_fn=limit_file_size(256 * 1024))
    assert proc.returncode == 3, proc.stderr  # 3: I/O error
    message = proc.stderr.strip()
    assert str(dest) in message and "File too large" in message, message
    assert len(message.splitlines()) == 1, message
    assert dest.read_bytes() == old
    assert temp_files(dest) == []


def test_full_disk_during_compress(sources, tmp_path):
    dest = tmp_path / "dest.vecpack"
    sources["old"].read_bytes()
    old = sources["old"].read_bytes()
    dest.write_bytes(old)
    proc = subprocess.run([BIN, "-q", "compress", str(sources["table"]), "-o", str(dest), "--codec", "f16"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          preexec_fn=limit_file_size(300 * 1024))
    assert proc.returncode == 3, proc.stderr
    assert str(dest) in proc.stderr and "File too large" in proc.stderr, proc.stderr
    assert dest.read_bytes() == old
    assert temp_files(dest) == []
