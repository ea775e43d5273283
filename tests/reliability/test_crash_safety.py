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
import shutil
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


def table_state(path):
    """What a reader of the table sees: its live rows and the neighbours of two keys."""
    info = inspect(path)
    live = info["rows"] - info.get("changes", {}).get("deleted_rows", 0)
    found = json.loads(vp("search", path, "w5", "w778", "-k", "5", "--json").stdout)
    return live, json.dumps(found, sort_keys=True)


@pytest.fixture(scope="module")
def changing(sources, tmp_path_factory):
    """A table (int8) and the inputs of the three changes: rows to add, keys to delete."""
    d = tmp_path_factory.mktemp("changing")
    rng = np.random.default_rng(8)
    more = d / "more.txt"
    with open(more, "w") as f:
        for i, row in enumerate(rng.normal(size=(6000, 64)).astype(np.float32)):
            f.write(f"n{i} " + " ".join(f"{v:.6f}" for v in row) + "\n")
    gone = d / "gone.txt"
    gone.write_text("".join(f"w{i}\n" for i in range(0, 12000, 7)))
    base = d / "base"
    base.mkdir()
    vp("compress", sources["table"], "-o", base / "t.vecpack", "--codec", "int8")
    changed = d / "changed"
    shutil.copytree(base, changed)
    vp("add", changed / "t.vecpack", more)
    vp("delete", changed / "t.vecpack", "--from", gone)
    return {"base": base, "changed": changed, "more": more, "gone": gone}


@pytest.mark.parametrize("change", ["add", "delete", "compact"])
def test_sigkill_during_a_change_leaves_the_old_or_the_new_generation(changing, tmp_path, change):
    start_from = changing["changed"] if change == "compact" else changing["base"]
    args = {"add": ["add", "{t}", changing["more"]],
            "delete": ["delete", "{t}", "--from", changing["gone"]],
            "compact": ["compact", "{t}"]}[change]

    def run_on(folder, **kwargs):
        return [BIN, "-q", *(str(a).replace("{t}", str(folder / "t.vecpack")) for a in args)]

    before = table_state(start_from / "t.vecpack")
    undisturbed = tmp_path / "undisturbed"
    shutil.copytree(start_from, undisturbed)
    start = time.monotonic()
    subprocess.run(run_on(undisturbed), check=True, stdin=subprocess.DEVNULL)
    duration = time.monotonic() - start
    after = table_state(undisturbed / "t.vecpack")
    assert before != after or change == "compact"
    rng = random.Random({"add": 1, "delete": 2, "compact": 3}[change])
    outcomes = {"old": 0, "new": 0}
    for trial in range(TRIALS // 2):
        folder = tmp_path / f"trial{trial}"
        shutil.copytree(start_from, folder)
        delay = rng.uniform(0, duration * 1.3)
        proc = subprocess.Popen(run_on(folder), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        table = folder / "t.vecpack"
        check = vp("verify", table, check=False)
        assert check.returncode == 0, f"{change} killed after {delay:.3f}s: {check.stdout}{check.stderr}"
        state = table_state(table)
        assert state in (before, after), f"{change} killed after {delay:.3f}s left a table that is neither generation"
        outcomes["old" if state == before else "new"] += 1
        # The next writer takes the lock (a killed writer's lock goes with it) and cleans up.
        vp("vacuum", table)
        assert table_state(table) == state
        shutil.rmtree(folder)
    print(f"\n{change}: {TRIALS // 2} writers killed: {outcomes['old']} left the old generation, "
          f"{outcomes['new']} the new one")
