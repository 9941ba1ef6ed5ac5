#!/bin/sh
# Installs nnkern for C and C++ users under a prefix:
#
#   PREFIX/include/nnkern.h
#   PREFIX/lib/libnnkern.a                    static library
#   PREFIX/lib/libnnkern.so.0.1.0             shared library (SONAME libnnkern.so.0),
#   PREFIX/lib/libnnkern.so.0, libnnkern.so   and its links
#   PREFIX/lib/pkgconfig/nnkern.pc            pkg-config: shared (add --static for the
#                                             static link line via Libs.private)
#   PREFIX/lib/pkgconfig/nnkern-static.pc     pkg-config: always the static library
#   PREFIX/lib/cmake/nnkern/nnkernConfig.cmake, nnkernConfigVersion.cmake
#                                             find_package(nnkern): imported targets
#                                             nnkern::nnkern (shared), nnkern::nnkern_static
#
# Usage: bindings/install.sh [--prefix DIR] [--features LIST] [--no-build] [--build-dir DIR]
#   --prefix DIR     where to install (default /usr/local; DESTDIR is honoured for staging)
#   --features LIST  cargo features for the build (e.g. blas: links the system CBLAS)
#   --no-build       install what is already built instead of building the C libraries
#                    (cargo rustc --release --lib --features capi --crate-type staticlib,cdylib)
#   --build-dir DIR  where the built libraries are (default: $CARGO_TARGET_DIR or target, /release)
# The generated files locate the prefix relative to themselves (pkg-config's
# ${pcfiledir}, CMake's CMAKE_CURRENT_LIST_DIR), so an installed tree can be moved.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
features=
build=1
build_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --features) features=$2; shift 2 ;;
        --features=*) features=${1#--features=}; shift ;;
        --no-build) build=0; shift ;;
        --build-dir) build_dir=$2; shift 2 ;;
        --build-dir=*) build_dir=${1#--build-dir=}; shift ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac
[ -n "$build_dir" ] || build_dir=${CARGO_TARGET_DIR:-$root/target}/release

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
# Compatibility key: the major version, or major.minor while the major is 0 (Cargo's rule).
compat=$major
if [ "$major" = 0 ]; then
    rest=${version#*.}
    compat=0.${rest%%.*}
fi

if [ "$build" = 1 ]; then
    if [ -n "$features" ]; then
        (cd "$root" && cargo rustc --release --lib --features "capi,$features" --crate-type staticlib,cdylib)
    else
        (cd "$root" && cargo rustc --release --lib --features capi --crate-type staticlib,cdylib)
    fi
fi
for f in libnnkern.a libnnkern.so; do
    [ -f "$build_dir/$f" ] || { echo "install.sh: $build_dir/$f is missing (build first)" >&2; exit 1; }
done

# The native libraries a program linking the static library needs: those of
# Rust's standard library for this target (what `--print native-static-libs`
# reports; tests/c_api.rs checks the crate adds none) plus CBLAS when built in.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/empty.rs"
native=$(rustc --crate-type staticlib --crate-name nnk_probe --print native-static-libs \
    -o "$tmp/libnnk_probe.a" "$tmp/empty.rs" 2>&1 | sed -n 's/.*native-static-libs: //p')
if nm "$build_dir/libnnkern.a" 2>/dev/null | grep -q ' U cblas_sgemm'; then
    native="-lopenblas $native"
fi

dest=${DESTDIR:-}$prefix
mkdir -p "$dest/include" "$dest/lib/pkgconfig" "$dest/lib/cmake/nnkern"
install -m 644 "$root/include/nnkern.h" "$dest/include/nnkern.h"
install -m 644 "$build_dir/libnnkern.a" "$dest/lib/libnnkern.a"
install -m 755 "$build_dir/libnnkern.so" "$dest/lib/libnnkern.so.$version"
ln -sf "libnnkern.so.$version" "$dest/lib/libnnkern.so.$major"
ln -sf "libnnkern.so.$major" "$dest/lib/libnnkern.so"

cat > "$dest/lib/pkgconfig/nnkern.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: nnkern
Description: SIMD numeric kernels and an MLP trainer for neural networks, with a C ABI
Version: $version
Libs: -L\${libdir} -lnnkern
Libs.private: $native
Cflags: -I\${includedir}
PC
cat > "$dest/lib/pkgconfig/nnkern-static.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: nnkern-static
Description: nnkern, always linked statically (libnnkern.a)
Version: $version
Libs: \${libdir}/libnnkern.a $native
Cflags: -I\${includedir}
PC

cmake_libs=$(echo "$native" | sed 's/-l//g; s/ \{1,\}/;/g')
cat > "$dest/lib/cmake/nnkern/nnkernConfig.cmake" <<CM
# find_package(nnkern) for nnkern $version, written by bindings/install.sh.
# Imported targets:
#   nnkern::nnkern         the shared library (libnnkern.so.$major)
#   nnkern::nnkern_static  the static library with the native libraries it needs
get_filename_component(_nnkern_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET nnkern::nnkern)
  add_library(nnkern::nnkern SHARED IMPORTED)
  set_target_properties(nnkern::nnkern PROPERTIES
    IMPORTED_LOCATION "\${_nnkern_prefix}/lib/libnnkern.so.$version"
    IMPORTED_SONAME "libnnkern.so.$major"
    INTERFACE_INCLUDE_DIRECTORIES "\${_nnkern_prefix}/include")
endif()
if(NOT TARGET nnkern::nnkern_static)
  add_library(nnkern::nnkern_static STATIC IMPORTED)
  set_target_properties(nnkern::nnkern_static PROPERTIES
    IMPORTED_LOCATION "\${_nnkern_prefix}/lib/libnnkern.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "\${_nnkern_prefix}/include"
    INTERFACE_LINK_LIBRARIES "$cmake_libs")
endif()
set(nnkern_INCLUDE_DIRS "\${_nnkern_prefix}/include")
set(nnkern_LIBRARIES nnkern::nnkern)
unset(_nnkern_prefix)
CM
cat > "$dest/lib/cmake/nnkern/nnkernConfigVersion.cmake" <<CM
# Version check for find_package(nnkern <version>): compatible when the asked version
# has the same major (major.minor while the major is 0) and is not newer.
set(PACKAGE_VERSION "$version")
set(_nnkern_key "\${PACKAGE_FIND_VERSION_MAJOR}")
if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "0")
  set(_nnkern_key "0.\${PACKAGE_FIND_VERSION_MINOR}")
endif()
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(_nnkern_key STREQUAL "$compat" AND NOT PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
endif()
unset(_nnkern_key)
CM
echo "installed nnkern $version under $dest"
