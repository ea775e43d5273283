#!/usr/bin/env bash
# The main job on the sample in data/: convert GloVe text, compress it, search it, and report
# what was gained (bytes) and what was lost (recall, neighbours).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
cd "$root"
vp=build/vecpack
out=build/demo
mkdir -p "$out"
sample=data/glove.6B.100d.15k.txt.gz

"$vp" -q convert "$sample" "$out/glove15k.f32.vecpack"
for codec in f16 int8; do
  "$vp" -q compress "$out/glove15k.f32.vecpack" -o "$out/glove15k.$codec.vecpack" --codec "$codec"
done

py=.venv/bin/python
echo
echo "== Size: $sample (15,000 words x 100 dimensions)"
"$py" tools/demo_report.py sizes "$vp" "$sample" \
  "vecpack f32" "$out/glove15k.f32.vecpack" "vecpack f16" "$out/glove15k.f16.vecpack" "vecpack int8" "$out/glove15k.int8.vecpack"

echo
echo "== Quality: 1,000 sample words as queries, against exact f32 search (each word's own row left out)"
for codec in f16 int8; do
  "$vp" eval "$out/glove15k.$codec.vecpack" --reference "$out/glove15k.f32.vecpack" --queries 1000 -k 10
done

echo
echo "== Nearest neighbours: exact (f32) | compressed (int8, 4x smaller)"
"$py" tools/demo_report.py neighbours "$vp" "$out/glove15k.f32.vecpack" "$out/glove15k.int8.vecpack" king paris computer coffee
