"""Builds a root folder for chroot that stands for a machine with Python and nothing else: it
holds the system libraries that this interpreter, its standard library and numpy load, and the
ones the manylinux policy lets a wheel assume, and no others (no OpenBLAS, HDF5, xxhash,
gfortran, curl). An installed wheel must import and run there.

    VENV/bin/python bare_root.py ROOT

Run with the interpreter of the venv that holds the wheel. Prints the folders to bind-mount
into ROOT at their own paths (the standard library and the venv), one per line.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# What manylinux lets a wheel take from the system (auditwheel's policy, less the X11, GL and
# GLib entries: vecpack needs none, and a server may not have them).
POLICY = {"libc.so.6", "libm.so.6", "libmvec.so.1", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libutil.so.1",
          "libnsl.so.1", "libanl.so.1", "libresolv.so.2", "libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1",
          "libz.so.1", "libexpat.so.1"}


def resolved_libraries(elf):
    """The system libraries ldd resolves for one ELF file: {soname: path}."""
    out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line) or re.match(r"\s*(/\S+) \(", line)
        if m:
            found[m.group(1)] = m.groups()[-1] if m.lastindex == 2 else m.group(1)
    return found


def place(root, path):
    """Recreates path inside root: each symlink on the way as a symlink, the file as a copy."""
    path = Path(path)
    while True:
        target = root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            link = os.readlink(path)
            if not target.is_symlink():
                target.symlink_to(link)
            path = (path.parent / link) if not os.path.isabs(link) else Path(link)
            continue
        if not target.exists():
            shutil.copy2(path, target)
        return


def main():
    root = Path(sys.argv[1]).resolve()
    venv = Path(sys.prefix).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    interpreter = Path(sys.executable)  # venv/bin/python: a symlink chain to the base interpreter

    elves = [Path(os.path.realpath(interpreter))]
    # The standard library's extension modules, less the desktop, terminal and database ones a
    # server need not have.
    desktop = ("_tkinter", "_curses", "readline", "nis", "_sqlite3", "_dbm", "_gdbm", "spwd", "_crypt", "ossaudiodev")
    elves += [so for so in stdlib.glob("lib-dynload/*.so") if not so.name.startswith(desktop)]
    import numpy
    elves += Path(numpy.__file__).parent.rglob("*.so")

    needed = {}
    for elf in elves:
        needed.update(resolved_libraries(elf))
    for name, path in list(needed.items()):
        if Path(path).resolve().is_relative_to(venv) or Path(path).resolve().is_relative_to(stdlib):
            del needed[name]  # bound into the root whole
    # The policy's libraries, where this system has them, and what they load in turn.
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for name in POLICY:
        m = re.search(rf"^\s*{re.escape(name)} \(libc6,x86-64\) => (\S+)$", cache, re.M)
        if m:
            needed[name] = m.group(1)
            needed.update(resolved_libraries(m.group(1)))

    for path in sorted(set(needed.values())):
        place(root, path)
    # The interpreter's symlink chain from the venv's bin/ (the venv itself is bound, not copied).
    link = interpreter
    while link.is_symlink():
        link = Path(os.path.join(link.parent, os.readlink(link)))
        if not link.resolve().is_relative_to(venv):
            place(root, link)
            break
    for folder in (stdlib, venv, Path("/dev"), Path("/proc"), Path("/sys"), Path("/tmp")):
        (root / folder.relative_to("/")).mkdir(parents=True, exist_ok=True)
    print(stdlib)
    print(venv)


if __name__ == "__main__":
    main()
