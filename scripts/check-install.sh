#!/usr/bin/env bash
# Checks tidal as its users get it: installs a build into a temporary prefix, builds
# examples/ against that installed tree with find_package(tidal) (a standalone project that
# sees nothing of the source or build tree), runs every example (each exits 0 on success),
# then compiles, links and runs examples/transfer.cc once more with only `pkg-config tidal`.
#
#   scripts/check-install.sh [BUILD_DIR]     (default build/release, already built)
#
# Environment: JOBS (parallel compile jobs, default 2), KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
build=${1:-build/release}
jobs=${JOBS:-2}

fail() {
  echo "check-install: FAIL: $*" >&2
  exit 1
}

if [[ ! -f $build/CMakeCache.txt ]]; then
  echo "check-install: $build is not a configured build folder (run scripts/test.sh or" \
       "cmake --preset release && cmake --build --preset release first)" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tidal-install.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then
  echo "check-install: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
prefix=$work/prefix

echo "=== install $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || {
  cat "$work/install.log" >&2
  fail "cmake --install $build"
}
config=$(find "$prefix" -path '*/cmake/tidal/tidalConfig.cmake' -print -quit)
pc=$(find "$prefix" -path '*/pkgconfig/tidal.pc' -print -quit)
[[ -n $config ]] || fail "no tidalConfig.cmake under $prefix"
[[ -n $pc ]] || fail "no tidal.pc under $prefix"
cmake_dir=$(dirname "$config")
for f in tidalConfigVersion.cmake tidalTargets.cmake; do
  [[ -f $cmake_dir/$f ]] || fail "no $f beside tidalConfig.cmake"
done
for h in tidal/transfer_engine.h tidal/sim/world.h tidal/backends/registry.h; do
  [[ -f $prefix/include/$h ]] || fail "header $h not installed"
done
# The installed package must not point back into the source or the build tree.
if leaks=$(grep -rlF -e "$source_dir" "$cmake_dir" "$pc"); then
  fail "installed package files name the source tree: $leaks"
fi
echo "libraries: $(find "$prefix" -name 'libtidal_*.a' -printf '%f\n' | sort | xargs)"
echo "programs:  $(find "$prefix" -path '*/bin/*' -type f -printf '%f\n' | sort | xargs)"

echo "=== examples/ against the installed tree (find_package(tidal))"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S examples -B "$work/examples" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  >"$work/examples-configure.log" 2>&1 || {
  cat "$work/examples-configure.log" >&2
  fail "configuring examples/ against $prefix"
}
found=$(sed -n 's/^tidal_DIR:PATH=//p' "$work/examples/CMakeCache.txt")
[[ $found == "$cmake_dir" ]] || fail "find_package(tidal) found '$found', not $cmake_dir"
cmake --build "$work/examples" -j "$jobs" >"$work/examples-build.log" 2>&1 || {
  cat "$work/examples-build.log" >&2
  fail "building examples/"
}

failed=0
shopt -s nullglob
sources=(examples/*.cc)
[[ ${#sources[@]} -gt 0 ]] || fail "examples/ has no .cc files"
for src in "${sources[@]}"; do
  name=$(basename "$src" .cc)
  bin=$work/examples/$name
  [[ -x $bin ]] || fail "examples/$name.cc built no program $bin"
  start=$(date +%s)
  if timeout 300 "$bin" >"$work/$name.out" 2>&1; then
    echo "PASS  example $name ($(( $(date +%s) - start ))s)"
  else
    rc=$?
    echo "FAIL  example $name: exit $rc; its output:"
    sed 's/^/    /' "$work/$name.out" | tail -n 40
    failed=1
  fi
done

echo "=== examples/transfer.cc with pkg-config"
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --cflags --libs tidal) || fail "pkg-config tidal"
echo "pkg-config --cflags --libs tidal: $flags"
# shellcheck disable=SC2086  # the flags are words
if c++ -std=c++20 -O1 examples/transfer.cc $flags -o "$work/transfer-pc" \
     >"$work/pc-build.log" 2>&1 && timeout 300 "$work/transfer-pc" >"$work/transfer-pc.out" 2>&1
then
  echo "PASS  example transfer (pkg-config)"
else
  echo "FAIL  example transfer (pkg-config):"
  tail -n 40 "$work/pc-build.log" "$work/transfer-pc.out" 2>/dev/null | sed 's/^/    /'
  failed=1
fi

if [[ $failed -ne 0 ]]; then fail "see the lines above"; fi
echo "check-install: PASS"
