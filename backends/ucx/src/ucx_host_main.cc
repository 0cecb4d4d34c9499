// tidal-ucx-host: one node of a UcxProcessFabric (registry name "ucx_proc"). Not a user
// command: the fabric starts it with fork+exec, the socket to the parent as fd 3 and the
// shared arena's memfd as fd 4, and these arguments (all required):
//   --arena-addr A --arena-bytes N --node I --probe-timeout-ns T --spin-ns S --busy-poll-ns B
// It maps the arena at A, answers the parent's requests with a UcxTransport of its own
// and exits when the parent closes the socket (or dies: PR_SET_PDEATHSIG).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "tidal/backends/ucx/ucx_process_fabric.h"

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
  std::map<std::string, uint64_t> args = {{"--arena-addr", 0}, {"--arena-bytes", 0},
                                          {"--node", 0},       {"--probe-timeout-ns", 0},
                                          {"--spin-ns", 0},    {"--busy-poll-ns", 0}};
  std::map<std::string, bool> seen;
  for (int i = 1; i < argc; i += 2) {
    auto it = args.find(argv[i]);
    if (it == args.end() || i + 1 >= argc || !ParseU64(argv[i + 1], &it->second)) {
      std::fprintf(stderr,
                   "tidal-ucx-host: bad argument '%s' (this program is started by the ucx_proc "
                   "fabric: --arena-addr A --arena-bytes N --node I --probe-timeout-ns T "
                   "--spin-ns S --busy-poll-ns B, with its socket as fd 3 and the arena as fd 4)\n",
                   argv[i]);
      return 2;
    }
    seen[argv[i]] = true;
  }
  for (const auto& [name, value] : args) {
    if (!seen[name]) {
      std::fprintf(stderr, "tidal-ucx-host: missing %s\n", name.c_str());
      return 2;
    }
  }
  tidal::backends::ucx::UcxTransportOptions options;
  options.probe_timeout_ns = args["--probe-timeout-ns"];
  options.spin_ns = args["--spin-ns"];
  options.busy_poll_ns = args["--busy-poll-ns"];
  return tidal::backends::ucx::RunUcxHost(3, 4, args["--arena-addr"], args["--arena-bytes"],
                                          args["--node"], options);
}
