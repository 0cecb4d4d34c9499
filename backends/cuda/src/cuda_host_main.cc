// tidal-cuda-host: one node of a CudaProcessFabric (registry name "cuda_proc"). Not a user
// command: the fabric starts it with fork+exec, the socket to the parent as fd 3 and the
// shared arena's memfd as fd 4, and these arguments (all required):
//   --arena-addr A --arena-bytes N --node I --device D
// It maps the arena at A, makes cuda:D current, answers the parent's requests with a
// CudaTransport of its own and exits when the parent closes the socket (or dies:
// PR_SET_PDEATHSIG).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "tidal/backends/cuda/cuda_process_fabric.h"

namespace {

bool ParseU64(const char* text, uint64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, uint64_t> args = {
      {"--arena-addr", 0}, {"--arena-bytes", 0}, {"--node", 0}, {"--device", 0}};
  std::map<std::string, bool> seen;
  for (int i = 1; i < argc; i += 2) {
    auto it = args.find(argv[i]);
    if (it == args.end() || i + 1 >= argc || !ParseU64(argv[i + 1], &it->second)) {
      std::fprintf(stderr,
                   "tidal-cuda-host: bad argument '%s' (this program is started by the cuda_proc "
                   "fabric: --arena-addr A --arena-bytes N --node I --device D, with its socket "
                   "as fd 3 and the arena as fd 4)\n",
                   argv[i]);
      return 2;
    }
    seen[argv[i]] = true;
  }
  for (const auto& [name, value] : args) {
    if (!seen[name]) {
      std::fprintf(stderr, "tidal-cuda-host: missing %s\n", name.c_str());
      return 2;
    }
  }
  if (args["--device"] > 1024) {
    std::fprintf(stderr, "tidal-cuda-host: --device %llu is no CUDA device\n",
                 static_cast<unsigned long long>(args["--device"]));
    return 2;
  }
  return tidal::backends::cuda::RunCudaHost(3, 4, args["--arena-addr"], args["--arena-bytes"],
                                            args["--node"], static_cast<int>(args["--device"]));
}
