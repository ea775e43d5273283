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

size() { stat -c %s "$1"; }
echo
echo "== Size: $sample (15,000 words x 100 dimensions)"
printf '  %-28s %12s\n' "GloVe text (gzip)" "$(size "$sample") B"
for codec in f32 f16 int8; do
  f="$out/glove15k.$codec.vecpack"
  printf '  %-28s %12s   %5.1fx smaller than f32 rows\n' "vecpack $codec" "$(size "$f") B" \
    "$(awk -v a=$((15000 * 400)) -v b="$("$vp" inspect --json "$f" | awk -F: '/"codes"/ {gsub(/[ ,]/,"",$2); print $2}')" 'BEGIN{print a/b}')"
done

echo
echo "== Quality: 1,000 sample words as queries, against exact f32 search (each word's own row left out)"
for codec in f16 int8; do
  "$vp" eval "$out/glove15k.$codec.vecpack" --reference "$out/glove15k.f32.vecpack" --queries 1000 -k 10
done

echo
echo "== Nearest neighbours: f32 (exact) and int8 (compressed)"
for word in king paris computer coffee; do
  paste <("$vp" search "$out/glove15k.f32.vecpack" "$word" -k 5) <("$vp" search "$out/glove15k.int8.vecpack" "$word" -k 5 | sed 's/^/   |   /')
done
