// tidal-ucx-host: one node of a UcxProcessFabric (registry name "ucx_proc"). Not a user
// command: the fabric starts it with fork+exec, the socket to the parent as fd 3 and the
// shared arena's memfd as fd 4, and these arguments (all required):
//   --arena-addr A --arena-bytes N --node I --probe-timeout-ns T --spin-ns S --busy-poll-ns B
// It maps the arena at A, answers the parent's requests with a UcxTransport of its own
// and exits when the parent closes the socket (or dies: PR_SET_PDEATHSIG).
#include <cstdio>
#include <map>
#include <string>

#include "tidal/backends/ucx/ucx_process_fabric.h"
#include "tidal/backends/process_fabric.h"

int main(int argc, char** argv) {
  std::map<std::string, uint64_t> args = {{"--arena-addr", 0}, {"--arena-bytes", 0},
                                          {"--node", 0},       {"--probe-timeout-ns", 0},
                                          {"--spin-ns", 0},    {"--busy-poll-ns", 0}};
  if (!tidal::backends::proc::ParseHostArgs(
          argc, argv, "tidal-ucx-host",
          "this program is started by the ucx_proc fabric: --arena-addr A --arena-bytes N "
          "--node I --probe-timeout-ns T --spin-ns S --busy-poll-ns B, with its socket as fd 3 "
          "and the arena as fd 4",
          &args)) {
    return 2;
  }
  tidal::backends::ucx::UcxTransportOptions options;
  options.probe_timeout_ns = args["--probe-timeout-ns"];
  options.spin_ns = args["--spin-ns"];
  options.busy_poll_ns = args["--busy-poll-ns"];
  return tidal::backends::ucx::RunUcxHost(3, 4, args["--arena-addr"], args["--arena-bytes"],
                                          args["--node"], options);
}
