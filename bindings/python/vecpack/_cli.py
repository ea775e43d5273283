"""The ``vecpack`` command that pip installs: it runs the command-line program shipped inside
the package (``vecpack/_bin/vecpack``), so ``pip install vecpack`` gives the same CLI as a
source build. ``vecpack bench`` runs its peer drivers with this interpreter."""

import os
import sys
from pathlib import Path


def main() -> int:
    package = Path(__file__).resolve().parent
    program = package / "_bin" / "vecpack"
    if not program.is_file():
        print(f"vecpack: this installation has no command-line program ({program} is missing; "
              "it is built into wheels, or as build/vecpack in a source tree)", file=sys.stderr)
        return 1
    os.environ.setdefault("VECPACK_PYTHON", sys.executable)
    drivers = package / "_bench"
    if drivers.is_dir():
        os.environ.setdefault("VECPACK_TOOLS_DIR", str(drivers))
    os.execv(program, [str(program), *sys.argv[1:]])
    return 1  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main())
