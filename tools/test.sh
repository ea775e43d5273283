#!/usr/bin/env bash
# The whole test suite, C++ and Python, after building whatever is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
cd "$root/build"
ctest --output-on-failure -j2 "$@"
