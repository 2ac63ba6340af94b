#!/bin/sh
# Seeds $1 (default fuzz/corpus/object_reader, not committed) with real
# objects: the test fixtures compiled by gcc (and clang-19 when installed)
# at several flag sets.
set -e
here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../tests/fixtures"
out="${1:-$here/corpus/object_reader}"
mkdir -p "$out"
for cc in gcc clang-19; do
  command -v $cc >/dev/null 2>&1 || continue
  for flags in "-O0" "-O2" "-O2 -fPIC -fno-plt" "-O2 -fPIC -mcmodel=large" "-O2 -fno-pic -mcmodel=large" "-O1 -g"; do
    tag=$(echo "$cc $flags" | tr -c 'a-zA-Z0-9\n' '_')
    for src in small.c feat_a.c feat_b.c feat_c.c feat_far.c feat_tls.c needs_missing.c comdat_strong_a.c; do
      $cc -fcommon $flags -c "$fixtures/$src" -o "$out/${src%.c}-$tag.o" 2>/dev/null || true
    done
  done
done
g++ -O2 -I"$fixtures" -c "$fixtures/cpp_a.cpp" -o "$out/cpp_a.o" 2>/dev/null || true
# Mach-O x86-64 and arm64 objects (the reader is chosen by the magic
# number; arm64 ones are prepared and linked, never run, on any host). The
# fixtures include system headers: zig cc carries the macOS SDK's (clang-19
# alone has none, so it compiles only what needs no header).
macho_cc() {
  target=$1
  shift
  if python3 -m ziglang version >/dev/null 2>&1; then
    case $target in
      x86_64) python3 -m ziglang cc -target x86_64-macos "$@" ;;
      arm64) python3 -m ziglang cc -target aarch64-macos "$@" ;;
    esac
  elif command -v clang-19 >/dev/null 2>&1; then
    clang-19 -target $target-apple-macos11 "$@"
  else
    return 1
  fi
}
for flags in "-O0" "-O2" "-O1 -g"; do
  for target in x86_64 arm64; do
    tag=$(echo "macho $target $flags" | tr -c 'a-zA-Z0-9\n' '_')
    for src in small.c feat_a.c feat_b.c feat_tls.c; do
      # shellcheck disable=SC2086
      macho_cc $target -fcommon $flags -c "$fixtures/$src" \
        -o "$out/${src%.c}-$tag.o" 2>/dev/null || true
    done
  done
done
if python3 -m ziglang version >/dev/null 2>&1; then
  python3 -m ziglang c++ -target x86_64-macos -O2 -I"$fixtures" -c "$fixtures/cpp_a.cpp" \
    -o "$out/cpp_a-macho.o" 2>/dev/null || true
fi
ls "$out" | wc -l
