#!/usr/bin/env bash
# Builds libjitrt in release mode (cargo profile `dist`) and installs it into
# a prefix, as C and C++ hosts expect a library to be installed:
#
#   PREFIX/lib/libjitrt.so.VERSION        the shared library (SONAME libjitrt.so.ABI)
#   PREFIX/lib/libjitrt.so.ABI -> libjitrt.so.VERSION
#   PREFIX/lib/libjitrt.so     -> libjitrt.so.ABI
#   PREFIX/lib/libjitrt.a                 the static library
#   PREFIX/lib/pkgconfig/jitrt.pc         pkg-config: jitrt
#   PREFIX/lib/cmake/jitrt/               CMake: find_package(jitrt) -> jitrt::jitrt, jitrt::jitrt_static
#   PREFIX/include/jitrt/jitrt.h          the header
#   PREFIX/bin/jitrt                      the command-line runner
#
# VERSION is the package version in Cargo.toml (the one place it is written);
# ABI is its MAJOR, or 0.MINOR before 1.0 (the rule cargo-c uses: under
# semver a 0.x minor release may break compatibility).
#
# The installed files carry no debug info. --debug-files also installs it,
# split out (PREFIX/lib/.debug/, PREFIX/bin/.debug/), where gdb and perf find
# it through the libraries' .gnu_debuglink.
#
# Needs cargo, and objcopy and readelf (binutils, which comes with gcc).
# Into a prefix only root may write (/usr/local), build as yourself and copy
# as root, so that no root-owned files land in cargo's target directory:
#
#   ./install.sh --build-only && sudo ./install.sh --no-build
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: ./install.sh [OPTIONS]

Build libjitrt in release mode and install it.

  --prefix DIR    install under DIR (default: /usr/local)
  --libdir DIR    libraries, pkg-config and CMake files (default: PREFIX/lib)
  --destdir DIR   stage into DIR/PREFIX/... while recording PREFIX in the
                  pkg-config and CMake files (for packagers; like DESTDIR)
  --debug-files   also install the debug info, split out (lib/.debug, bin/.debug)
  --build-only    build, install nothing
  --no-build      install what --build-only built (cargo is not run)
  -h, --help      this help

Into /usr/local: ./install.sh --build-only && sudo ./install.sh --no-build

Environment: CARGO (default: cargo), CARGO_TARGET_DIR (where to build; for
--no-build without cargo, default: target/ of this repository).
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

prefix=/usr/local
libdir=
destdir=
debug_files=0
build=1
install=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --libdir) [ $# -ge 2 ] || die "--libdir needs a directory"; libdir=$2; shift 2 ;;
    --libdir=*) libdir=${1#*=}; shift ;;
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    --debug-files) debug_files=1; shift ;;
    --build-only) install=0; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

# Absolute paths: they are written into jitrt.pc and the CMake package.
abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}
[ -n "$prefix" ] || die "--prefix is empty"
prefix=$(abspath "$prefix")
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/
libdir=$(abspath "${libdir:-$prefix/lib}")
includedir=$prefix/include
bindir=$prefix/bin
if [ -n "$destdir" ]; then
  destdir=$(abspath "$destdir")
  destdir=${destdir%/}
fi

[ "$build" = 1 ] || [ "$install" = 1 ] || die "--build-only and --no-build: nothing to do"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$repo"
cargo=${CARGO:-cargo}
if [ "$build" = 1 ]; then
  command -v "$cargo" >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
fi
for tool in objcopy readelf; do
  command -v "$tool" >/dev/null || die "$tool not found (it is in binutils: apt-get install binutils)"
done

# The version: [package] version in Cargo.toml, where it is written once.
version=$(awk '/^\[/ { p = ($0 ~ /^\[package\][ \t]*$/) }
  p && /^version[ \t]*=/ { sub(/^[^"]*"/, ""); sub(/".*/, ""); print; exit }' Cargo.toml)
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+) ]] || die "no version in Cargo.toml's [package] table: '$version'"
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}
if [ "$major" = 0 ]; then abi=0.$minor; else abi=$major; fi
soname=libjitrt.so.$abi

if command -v "$cargo" >/dev/null; then
  target_dir=$("$cargo" metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [ -n "$target_dir" ] || die "cannot find cargo's target directory (cargo metadata)"
else
  target_dir=${CARGO_TARGET_DIR:-$repo/target}
fi
out=$target_dir/dist

# Fail before building when the prefix cannot be written.
if [ "$install" = 1 ]; then
  for dir in "$destdir$libdir" "$destdir$includedir" "$destdir$bindir"; do
    d=$dir
    while [ ! -e "$d" ]; do d=$(dirname "$d"); done
    [ -w "$d" ] || die "cannot write to $d (for $dir): choose another --prefix, or build" \
      "as yourself and install as root: ./install.sh --build-only && sudo ./install.sh --no-build"
  done
fi

if [ "$build" = 1 ]; then
  # build.rs gives the cdylib the SONAME in JITRT_SONAME; the `dist` profile
  # keeps these builds apart from `cargo build --release`.
  echo "install.sh: building libjitrt $version (cargo build --profile dist)" >&2
  JITRT_SONAME=$soname "$cargo" build --profile dist --lib --bin jitrt
fi
for f in libjitrt.so libjitrt.a jitrt; do
  [ -f "$out/$f" ] || die "$out/$f is missing: build it (./install.sh --build-only)"
done
built_soname=$(readelf -d "$out/libjitrt.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$built_soname" = "$soname" ] ||
  die "$out/libjitrt.so has SONAME '$built_soname', not $soname: rebuild it (./install.sh --build-only)"
built_version=$("$out/jitrt" --version) || die "$out/jitrt --version failed"
[ "$built_version" = "jitrt $version" ] ||
  die "$out/jitrt says '$built_version', Cargo.toml $version: rebuild it (./install.sh --build-only)"
if [ "$install" = 0 ]; then
  echo "install.sh: built libjitrt $version in $out; install it with ./install.sh --no-build" >&2
  exit 0
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/jitrt-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Debug info out of the installed files; with --debug-files, into separate
# files the stripped ones name through .gnu_debuglink.
strip_into() { # SRC DEST_NAME -> $stage/DEST_NAME (and $stage/DEST_NAME.debug)
  local src=$1 name=$2
  if [ "$debug_files" = 1 ]; then
    objcopy --only-keep-debug "$src" "$stage/$name.debug"
    chmod 0644 "$stage/$name.debug"
    (cd "$stage" && objcopy --strip-debug --add-gnu-debuglink="$name.debug" "$src" "$name")
  else
    objcopy --strip-debug "$src" "$stage/$name"
  fi
}
strip_into "$out/libjitrt.so" "libjitrt.so.$version"
strip_into "$out/jitrt" jitrt
objcopy --strip-debug "$out/libjitrt.a" "$stage/libjitrt.a"

cat >"$stage/jitrt.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=$libdir
includedir=\${prefix}/include

Name: jitrt
Description: In-process JIT linker and code-removal runtime (ORC v2 resource tracking behind a C ABI)
Version: $version
Libs: -L\${libdir} -ljitrt
Libs.private: -ldl -lpthread -lm
Cflags: -I\${includedir}/jitrt
EOF

cat >"$stage/jitrtConfig.cmake" <<EOF
# CMake package of libjitrt $version, written by install.sh.
#
#   find_package(jitrt $major.$minor REQUIRED)
#   target_link_libraries(app PRIVATE jitrt::jitrt)         # libjitrt.so
#   target_link_libraries(app PRIVATE jitrt::jitrt_static)  # libjitrt.a
#
# Both targets carry the include directory (#include "jitrt.h").
if(NOT TARGET jitrt::jitrt)
  add_library(jitrt::jitrt SHARED IMPORTED)
  set_target_properties(jitrt::jitrt PROPERTIES
    IMPORTED_LOCATION "$libdir/libjitrt.so.$version"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "$includedir/jitrt")
endif()
if(NOT TARGET jitrt::jitrt_static)
  add_library(jitrt::jitrt_static STATIC IMPORTED)
  set_target_properties(jitrt::jitrt_static PROPERTIES
    IMPORTED_LOCATION "$libdir/libjitrt.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "$includedir/jitrt"
    INTERFACE_LINK_LIBRARIES "dl;pthread;m")
endif()
set(jitrt_VERSION "$version")
EOF

cat >"$stage/jitrtConfigVersion.cmake" <<EOF
# find_package(jitrt X.Y) accepts this $version when X.Y <= $version and the
# ABI matches: same major version, and before 1.0 the same minor version.
set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
set(PACKAGE_VERSION_EXACT FALSE)
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "" AND NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  set(PACKAGE_VERSION "$version (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
  return()
endif()
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(PACKAGE_FIND_VERSION VERSION_LESS_EQUAL PACKAGE_VERSION
       AND PACKAGE_FIND_VERSION_MAJOR EQUAL $major
       AND ($major GREATER 0 OR PACKAGE_FIND_VERSION_MINOR EQUAL $minor))
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
EOF

# Copy into place.
L=$destdir$libdir
I=$destdir$includedir
B=$destdir$bindir
install -d "$L" "$L/pkgconfig" "$L/cmake/jitrt" "$I/jitrt" "$B"
install -m 0755 "$stage/libjitrt.so.$version" "$L/libjitrt.so.$version"
ln -sfn "libjitrt.so.$version" "$L/$soname"
ln -sfn "$soname" "$L/libjitrt.so"
install -m 0644 "$stage/libjitrt.a" "$L/libjitrt.a"
install -m 0644 "$stage/jitrt.pc" "$L/pkgconfig/jitrt.pc"
install -m 0644 "$stage/jitrtConfig.cmake" "$stage/jitrtConfigVersion.cmake" "$L/cmake/jitrt/"
install -m 0644 include/jitrt.h "$I/jitrt/jitrt.h"
install -m 0755 "$stage/jitrt" "$B/jitrt"
if [ "$debug_files" = 1 ]; then
  install -d "$L/.debug" "$B/.debug"
  install -m 0644 "$stage/libjitrt.so.$version.debug" "$L/.debug/"
  install -m 0644 "$stage/jitrt.debug" "$B/.debug/"
fi

echo "install.sh: installed libjitrt $version into ${destdir}${prefix}" >&2
# A library directory the loader searches through its cache (/usr/local/lib
# on Debian): refresh the cache, as `make install` of a C library does.
loader_dirs=
if command -v ldconfig >/dev/null; then
  loader_dirs=$(ldconfig -v -N 2>/dev/null | sed -n 's/^\(\/[^:]*\):.*/\1/p') || true
fi
if [ -z "$destdir" ] && [ "$(id -u)" = 0 ] && printf '%s\n' "$loader_dirs" | grep -qxF "$libdir"; then
  ldconfig
elif [ -z "$destdir" ]; then
  case "$libdir" in
    /lib | /usr/lib | /lib64 | /usr/lib64 | /usr/lib/*-linux-gnu) ;;
    *) echo "install.sh: $libdir is not on the loader's path: link with -Wl,-rpath,$libdir" \
      "(or add it to /etc/ld.so.conf.d/ and run ldconfig); for pkg-config:" \
      "export PKG_CONFIG_PATH=$libdir/pkgconfig" >&2 ;;
  esac
fi
