// BuggyTransport: a test-only Transport decorator that breaks exactly one clause of the
// transport contract (transport.h), chosen by a TransportBug, so the conformance suite
// can prove that each of its clause checks fails when the clause is broken (a check that
// cannot fail is a defect). It lives beside the suite and is linked into no library.
//
// Each bug is what a real backend has been seen to get wrong; the decorator produces the
// same observable behaviour on top of a correct transport:
//   kCompleteRejected      a task refused at Submit still gets a completion
//   kMoveBytesOnRejected   a task refused for an unregistered local range moves the part
//                          of it that was registered anyway
//   kDropCompletion        the first completion of a transfer is lost
//   kCompleteTwice         every completion is reported twice
//   kCancelDropsCompletion a canceled task never completes
//   kOkBeforeVisible       a WRITE reports OK before its data has landed
//   kOkOnShort             a short transfer reports OK with the full length
//   kSkipLocalCheck        a local range outside registered memory is used as far as it
//                          overlaps a region, and reported OK
//   kSkipWindowCheck       the target lets an access run outside the exported region
//   kSkipKeyCheck          the target accepts any key for an exported range
//   kNotifyBeforeData      the data of a completed write is still in flight when the
//                          notification that follows it is delivered
//   kTouchAfterUnregister  UnregisterMemory returns OK but the range stays registered
//   kDistinctPeerIds       connecting twice to one address gives two PeerIds
//   kCancelUnknownOk       Cancel of an unknown id returns OK
//   kProbeAlwaysOk         a probe reports OK whether or not the peer answers
//
// It reads and writes remote memory directly for kNotifyBeforeData (hiding the data until
// the notification is out), so it suits in-process rigs only, which is where it is used.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tidal/transport.h"

namespace tidal::testing {

enum class TransportBug : uint8_t {
  kNone,
  kCompleteRejected,
  kMoveBytesOnRejected,
  kDropCompletion,
  kCompleteTwice,
  kCancelDropsCompletion,
  kOkBeforeVisible,
  kOkOnShort,
  kSkipLocalCheck,
  kSkipWindowCheck,
  kSkipKeyCheck,
  kNotifyBeforeData,
  kTouchAfterUnregister,
  kDistinctPeerIds,
  kCancelUnknownOk,
  kProbeAlwaysOk,
};
std::string_view TransportBugName(TransportBug bug);
std::vector<TransportBug> AllTransportBugs();  // every bug but kNone

class BuggyTransport;

// The decorators of one rig, by segment name, so a sender can hand a receiver the data
// it is hiding (kNotifyBeforeData).
struct BuggyBus {
  std::map<std::string, BuggyTransport*, std::less<>> by_segment;
};

class BuggyTransport final : public Transport {
 public:
  BuggyTransport(std::unique_ptr<Transport> inner, TransportBug bug,
                 std::shared_ptr<BuggyBus> bus);
  ~BuggyTransport() override;

  std::string_view Name() const override { return inner_->Name(); }
  TransportCaps Capabilities() const override { return inner_->Capabilities(); }
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

 private:
  struct Hidden {  // the true bytes of a landed write, kept back from the target
    uint64_t addr = 0;
    std::vector<uint8_t> bytes;
    bool handed_out = false;  // its notification has been polled
  };
  PeerId Inner(PeerId outer) const;
  bool LocalRegistered(uint64_t addr, uint64_t length) const;
  // The part of [addr, addr+length) inside one of `regions`: {offset, length}, or length 0.
  static std::pair<uint64_t, uint64_t> Clip(const std::vector<RegionInfo>& regions,
                                            uint64_t addr, uint64_t length);
  // Rewrites one completion the inner transport produced; false drops it.
  bool Filter(TransportCompletion& c);
  void Signal();

  std::unique_ptr<Transport> inner_;
  TransportBug bug_;
  std::shared_ptr<BuggyBus> bus_;
  TransportInstall install_;
  std::vector<RegionInfo> local_;                   // registered here (addr, length)
  std::vector<PeerId> outer_to_inner_;              // the PeerIds handed out
  std::map<PeerId, SegmentDescriptor> peers_;       // inner PeerId -> its descriptor
  std::map<uint64_t, TransportTask> tasks_;         // accepted, as the caller submitted them
  std::deque<TransportCompletion> extra_;           // made-up completions, reported first
  std::set<uint64_t> swallow_;                      // their real completions are dropped
  std::set<uint64_t> claim_ok_;                     // reported OK whatever happened
  std::set<uint64_t> internal_;                     // tasks of our own, never reported
  uint64_t next_internal_id_ = uint64_t{1} << 62;
  bool dropped_one_ = false;
  std::map<uint64_t, std::vector<uint8_t>> before_;           // write id -> target bytes
  std::map<PeerId, std::vector<std::pair<uint64_t, std::vector<uint8_t>>>> landed_;
  std::map<std::string, std::vector<Hidden>, std::less<>> hidden_;  // by source segment
};

}  // namespace tidal::testing
