// tidal-cuda-host: one node of a CudaProcessFabric (registry name "cuda_proc"). Not a user
// command: the fabric starts it with fork+exec, the socket to the parent as fd 3 and the
// shared arena's memfd as fd 4, and these arguments (all required):
//   --arena-addr A --arena-bytes N --node I --device D
// It maps the arena at A, makes cuda:D current, answers the parent's requests with a
// CudaTransport of its own and exits when the parent closes the socket (or dies:
// PR_SET_PDEATHSIG).
#include <cstdio>
#include <map>
#include <string>

#include "tidal/backends/cuda/cuda_process_fabric.h"
#include "tidal/backends/process_fabric.h"

int main(int argc, char** argv) {
  std::map<std::string, uint64_t> args = {
      {"--arena-addr", 0}, {"--arena-bytes", 0}, {"--node", 0}, {"--device", 0}};
  if (!tidal::backends::proc::ParseHostArgs(
          argc, argv, "tidal-cuda-host",
          "this program is started by the cuda_proc fabric: --arena-addr A --arena-bytes N "
          "--node I --device D, with its socket as fd 3 and the arena as fd 4",
          &args)) {
    return 2;
  }
  if (args["--device"] > 1024) {
    std::fprintf(stderr, "tidal-cuda-host: --device %llu is no CUDA device\n",
                 static_cast<unsigned long long>(args["--device"]));
    return 2;
  }
  return tidal::backends::cuda::RunCudaHost(3, 4, args["--arena-addr"], args["--arena-bytes"],
                                            args["--node"], static_cast<int>(args["--device"]));
}
