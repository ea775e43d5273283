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
"$vp" -q compress "$out/glove15k.f32.vecpack" -o "$out/glove15k.pq16x.vecpack" --codec "pq:m=50,nbits=4"

py=.venv/bin/python
echo
echo "== Size: $sample (15,000 words x 100 dimensions)"
"$py" tools/demo_report.py sizes "$vp" "$sample" \
  "vecpack f32" "$out/glove15k.f32.vecpack" "vecpack f16" "$out/glove15k.f16.vecpack" \
  "vecpack int8" "$out/glove15k.int8.vecpack" "vecpack pq:m=50,nbits=4" "$out/glove15k.pq16x.vecpack"

echo
echo "== The range: each codec's bytes, ratio and recall@10, measured on 1,000 sample words as queries"
echo "   against exact f32 search (each word's own row left out); bytes/vector include the codebooks"
echo "   shared by the 15,000 rows, which a larger table spreads thinner"
"$vp" -q bench "$out/glove15k.f32.vecpack" --runs 1 --out "$out/range" \
  --codecs "f16;int8;rbin:bits=2+int8@100;pq:m=25;pq:m=50,nbits=4;mixdim:budget=25,order=file;pq:m=10" |
  "$py" tools/demo_report.py range "f16" "int8" "rbin:bits=2 + int8 rerank of 100" "pq:m=25" \
    "pq:m=50,nbits=4 (fast scan)" "mixdim:budget=25 (by frequency)" "pq:m=10"
echo "   (mixdim gives frequent words more dimensions; these queries are drawn evenly from all words)"
echo "   recall against bytes, as a plot: $out/range/bench.png"

echo
echo "== Nearest neighbours: exact (f32) | int8 (4x smaller) | pq:m=50,nbits=4 (16x smaller)"
"$py" tools/demo_report.py neighbours "$vp" "$out/glove15k.f32.vecpack" "$out/glove15k.int8.vecpack" \
  "$out/glove15k.pq16x.vecpack" -- king paris computer coffee
