// A transfer-engine program: two nodes of the simulated fabric from the backend registry.
// Node 0 registers a source buffer, node 1 a target buffer; node 0 opens node 1's segment,
// WRITEs its bytes there and READs them back into a second buffer, with TransferSync, and
// checks every byte. Prints what it did; exits 0 only if every check held.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tidal/backends/registry.h"
#include "tidal/fabric.h"
#include "tidal/transfer_engine.h"

namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok:  " : "FAIL:", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main() {
  constexpr size_t kBytes = 1 << 20;
  tidal::backends::FabricSpec spec;
  spec.nodes = 2;
  tidal::Result<std::unique_ptr<tidal::Fabric>> made = tidal::backends::MakeFabric("sim", spec);
  if (!made.ok()) {
    std::fprintf(stderr, "no sim fabric: %s\n", made.status().ToString().c_str());
    return 1;
  }
  tidal::Fabric& fabric = **made;
  tidal::TransferEngine& local = fabric.engine(0);
  tidal::TransferEngine& remote = fabric.engine(1);
  std::printf("fabric '%s' with %zu nodes\n", std::string(fabric.Name()).c_str(), fabric.size());

  // Fabric memory (the simulator's host memory here), registered with each node's engine.
  auto* source = static_cast<uint8_t*>(fabric.Allocate(0, kBytes, tidal::Location::Host()));
  auto* readback = static_cast<uint8_t*>(fabric.Allocate(0, kBytes, tidal::Location::Host()));
  auto* target = static_cast<uint8_t*>(fabric.Allocate(1, kBytes, tidal::Location::Host()));
  for (size_t i = 0; i < kBytes; ++i) source[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
  Check(fabric.Run(local.RegisterMemory(source, kBytes, tidal::Location::Host())).ok(),
        "node0 registers 1 MiB source");
  Check(fabric.Run(local.RegisterMemory(readback, kBytes, tidal::Location::Host())).ok(),
        "node0 registers 1 MiB read-back buffer");
  Check(fabric.Run(remote.RegisterMemory(target, kBytes, tidal::Location::Host())).ok(),
        "node1 registers 1 MiB target");

  tidal::Result<tidal::SegmentHandle> peer =
      fabric.Run(local.OpenSegment(tidal::Fabric::NodeName(1)));
  Check(peer.ok(), "node0 opens segment " + tidal::Fabric::NodeName(1) +
                       (peer.ok() ? "" : ": " + peer.status().ToString()));
  if (!peer.ok()) return 1;

  const auto addr = [](const void* p) { return reinterpret_cast<uint64_t>(p); };
  std::vector<tidal::TransferRequest> write = {
      {tidal::TransferOp::kWrite, addr(source), kBytes, *peer, addr(target)}};
  std::vector<tidal::TransferStatus> w = fabric.Run(local.TransferSync(write));
  Check(w.size() == 1 && w[0].state == tidal::TransferState::COMPLETED &&
            w[0].bytes_transferred == kBytes,
        "WRITE 1 MiB node0 -> node1 completes with every byte");
  Check(std::memcmp(source, target, kBytes) == 0, "node1's target holds node0's bytes");

  std::vector<tidal::TransferRequest> read = {
      {tidal::TransferOp::kRead, addr(readback), kBytes, *peer, addr(target)}};
  std::vector<tidal::TransferStatus> r = fabric.Run(local.TransferSync(read));
  Check(r.size() == 1 && r[0].state == tidal::TransferState::COMPLETED &&
            r[0].bytes_transferred == kBytes,
        "READ 1 MiB node1 -> node0 completes with every byte");
  Check(std::memcmp(source, readback, kBytes) == 0, "node0's read-back buffer matches");

  if (failures != 0) {
    std::fprintf(stderr, "transfer example: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("transfer example: every check held\n");
  return 0;
}
