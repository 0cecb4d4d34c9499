// `tidal-bench coll [options]`: the collectives table of tidal-coll-bench (nccl-tests
// columns, --fabric through the backend registry), compiled into tidal-bench without that
// tool's main. Same options and output as tidal-coll-bench.
#define TIDAL_COLL_BENCH_NO_MAIN 1
#include "../tidal-coll-bench/main.cc"
