#!/usr/bin/env bash
# carry-cuda-tests.sh [BUILD_DIR] [OUT_DIR]
#
# Prepares the CUDA-labelled test binaries of a build made here (nvcc in /usr/local/cuda)
# for a GPU machine that has no UCX or ibverbs libraries: strips them into OUT_DIR
# (default build/gpu) with the shared libraries they need, and writes OUT_DIR/run.sh, which
# runs them there (reducer, backend, conformance, and the `cuda` instances of the contract,
# store, collectives and sim-vs-real suites) with NCCL_NVLS_ENABLE=0.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
out=${2:-build/gpu}
mkdir -p "$out"
tests=(collectives/cuda/reduce_cuda_test backends/cuda/cuda_backend_test
       backends/cuda/cuda_conformance_test backends/cuda/cuda_xproc_test
       tests/contract/transport_contract_test
       store/store_api_test collectives/collectives_sim_test tests/contract/sim_vs_real_test
       collectives/cuda/collectives_device_cuda_test)
# CARRY_ONLY="a b": carry only the binaries with these base names (a build that made only
# what one change touched); run.sh then runs those that are present.
for t in "${tests[@]}"; do
  if [ -n "${CARRY_ONLY:-}" ] && [[ " $CARRY_ONLY " != *" $(basename "$t") "* ]]; then continue; fi
  [ -x "$build/$t" ] || { echo "carry-cuda-tests: $build/$t is not built (TIDAL_CUDA=ON?)" >&2; exit 1; }
  strip -o "$out/$(basename "$t")" "$build/$t"
done
# The store across processes with GPU buffers (cuda_store_xproc.sh under with-master.sh)
# and tidal-cuda-ipc-bench, when built.
if [ -x "$build/backends/cuda/cuda_store_node" ] && [ -x "$build/tools/tidal-master" ]; then
  strip -o "$out/cuda_store_node" "$build/backends/cuda/cuda_store_node"
  strip -o "$out/tidal-master" "$build/tools/tidal-master"
  cp scripts/with-master.sh backends/cuda/e2e/cuda_store_xproc.sh "$out/"
fi
# The cuda_proc fabric (its test and node binary, tidal-cuda-host, which the registry suites'
# cuda_proc instances start from beside themselves) and the GPU rank killed as a process
# (cuda_kill_rank_test with cuda_coll_node and tidal-master beside it), when built and not
# left out by CARRY_ONLY.
for t in backends/cuda/cuda_process_fabric_test backends/cuda/tidal-cuda-host \
         backends/cuda/cuda_kill_rank_test backends/cuda/cuda_coll_node tools/tidal-master; do
  if [ -n "${CARRY_ONLY:-}" ] && [[ " $CARRY_ONLY " != *" $(basename "$t") "* ]]; then continue; fi
  if [ -x "$build/$t" ]; then strip -o "$out/$(basename "$t")" "$build/$t"; fi
done
ipc_bench=backends/cuda/tidal-cuda-ipc-bench
if [ -x "$build/$ipc_bench" ]; then strip -o "$out/tidal-cuda-ipc-bench" "$build/$ipc_bench"; fi
# The GPU benchmark (tidal-cuda-bench: transfer, nccl, coll), when built.
bench=tools/tidal-cuda-bench/tidal-cuda-bench
if [ -x "$build/$bench" ]; then strip -o "$out/tidal-cuda-bench" "$build/$bench"; fi
# libnccl (over 200 MB) does not travel: run.sh finds the GPU machine's own.
for lib in libucp.so.0 libuct.so.0 libucs.so.0 libucm.so.0 libibverbs.so.1 libnl-3.so.200 \
           libnl-route-3.so.200 libboost_program_options.so.1.74.0; do
  # awk reads to the end (no `exit`): under pipefail, ldconfig killed by SIGPIPE would end
  # the script here without a word.
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !found { print $NF; found = 1 }')
  if [ -n "$path" ]; then cp -L "$path" "$out/"; fi
done
cat >"$out/run.sh" <<'RUN'
#!/usr/bin/env bash
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD:${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
# The machine's NCCL for tidal-cuda-bench (CUDA's lib folder or a Python wheel's).
nccl=$(ldconfig -p | awk '$1 == "libnccl.so.2" { print $NF; exit }')
[ -n "$nccl" ] || nccl=$(find /usr/local /usr/lib /opt -name libnccl.so.2 2>/dev/null | head -1)
[ -n "$nccl" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$nccl")
nvidia-smi -L
rc=0
for t in reduce_cuda_test cuda_backend_test cuda_conformance_test collectives_device_cuda_test \
         cuda_process_fabric_test cuda_kill_rank_test; do
  [ -x ./$t ] || continue
  echo "== $t"; ./$t || rc=1
done
# CudaTransport across processes (it starts its peer processes from its own binary).
[ -x ./cuda_xproc_test ] && { echo "== cuda_xproc_test"; ./cuda_xproc_test || rc=1; }
[ -x ./cuda_store_node ] && { echo "== cuda.store_xproc"
  ./with-master.sh ./tidal-master ./cuda_store_xproc.sh ./cuda_store_node || rc=1; }
for t in transport_contract_test store_api_test collectives_sim_test sim_vs_real_test; do
  [ -x ./$t ] || continue
  echo "== $t (cuda instances)"; ./$t --gtest_filter='*cuda' || rc=1
done
# The cuda_proc instances (a process per GPU; tidal-cuda-host beside them), as ctest lists
# them under label `cuda`: the contract suites whole, every collective at 2 and 3 ranks.
for t in transport_contract_test sim_vs_real_test; do
  [ -x ./$t ] && [ -x ./tidal-cuda-host ] || continue
  echo "== $t (cuda_proc instances)"; ./$t --gtest_filter='*cuda_proc' || rc=1
done
[ -x ./collectives_sim_test ] && [ -x ./tidal-cuda-host ] && {
  echo "== collectives_sim_test (cuda_proc instances)"
  ./collectives_sim_test \
    --gtest_filter='WorldSizes1To8/ExactValues.*_w2_cuda_proc:WorldSizes1To8/ExactValues.*_w3_cuda_proc' \
    || rc=1; }
exit $rc
RUN
chmod +x "$out/run.sh"
echo "carry-cuda-tests: $out ready ($(du -sh "$out" | cut -f1)); on the GPU machine: bash $out/run.sh"
