// The transport conformance suite: every clause of the Transport contract
// (engine/include/tidal/transport.h), checked on raw transports with no TransferEngine
// above them, one test per clause, instantiated over every backend in the registry (the
// simulator always runs; a backend not built or without hardware skips with the
// registry's reason; a clause that needs injected faults skips where they cannot be).
//
// Going around the facade matters: the facade validates local ranges and remote windows
// itself, so through it a backend that never checked would pass. Here the tasks carry
// wrong keys and out-of-window ranges straight to the transport, and the checks compare
// the memory on both sides, guard bands included, byte for byte.
//
// Each check runs under several seeds, so the simulator's allowances (transport.h,
// "Allowed") reorder and delay differently each time. The checks themselves live in
// transport_clauses.cc and return their violations; the PlantedBugs tests below prove
// each one fails against a BuggyTransport that breaks its clause, and passes for the
// same decorator with no bug:
//
//   clause (test name)                                  planted bug that breaks it
//   RejectedTaskProducesNoCompletionAndMovesNoBytes     CompleteRejected, MoveBytesOnRejected
//   EveryAcceptedTaskCompletesExactlyOnce               DropCompletion, CompleteTwice
//   CancelCompletesTheTaskExactlyOnce                   CancelDropsCompletion
//   OkMeansEveryByteIsVisibleAtTheTarget                OkBeforeVisible
//   ShortTransferIsIncompleteWithTheTrueCount           OkOnShort
//   LocalRangeOutsideRegisteredMemoryIsNotRegistered    SkipLocalCheck
//   RemoteRangeOutsideTheWindowIsDeniedAtTheTarget      SkipWindowCheck
//   WrongRemoteKeyIsDeniedAtTheTarget                   SkipKeyCheck
//   NotificationFollowsTheDataOfCompletedWrites         NotifyBeforeData
//   UnregisteredRangeIsNeverTouchedAgain                TouchAfterUnregister
//   ConnectTwiceReturnsOnePeerId                        DistinctPeerIds
//   CancelOfUnknownIdIsInvalidParams                    CancelUnknownOk
//   ProbeAnswersForALivePeerOnly                        ProbeAlwaysOk
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "buggy_transport.h"
#include "transport_clauses.h"
#include "transport_rig.h"

namespace tidal::testing {
namespace {

const std::vector<uint64_t> kSeeds = {1, 2, 3, 4, 5, 6};

std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "  " + l + "\n";
  return out;
}

class TransportConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void Check(Clause clause) {
    const std::string backend = GetParam();
    ClauseResult r = CheckClause(
        clause, [&](RigOptions o) { return MakeTransportRig(backend, std::move(o)); }, kSeeds);
    if (!r.skipped.empty()) GTEST_SKIP() << r.skipped;
    EXPECT_TRUE(r.violations.empty()) << "transport '" << backend << "' breaks "
                                      << ClauseName(clause) << ":\n"
                                      << Lines(r.violations);
  }
};

TEST_P(TransportConformance, RejectedTaskProducesNoCompletionAndMovesNoBytes) {
  Check(Clause::kRejectedTaskProducesNoCompletionAndMovesNoBytes);
}
TEST_P(TransportConformance, EveryAcceptedTaskCompletesExactlyOnce) {
  Check(Clause::kEveryAcceptedTaskCompletesExactlyOnce);
}
TEST_P(TransportConformance, CancelCompletesTheTaskExactlyOnce) {
  Check(Clause::kCancelCompletesTheTaskExactlyOnce);
}
TEST_P(TransportConformance, OkMeansEveryByteIsVisibleAtTheTarget) {
  Check(Clause::kOkMeansEveryByteIsVisibleAtTheTarget);
}
TEST_P(TransportConformance, ShortTransferIsIncompleteWithTheTrueCount) {
  Check(Clause::kShortTransferIsIncompleteWithTheTrueCount);
}
TEST_P(TransportConformance, LocalRangeOutsideRegisteredMemoryIsNotRegistered) {
  Check(Clause::kLocalRangeOutsideRegisteredMemoryIsNotRegistered);
}
TEST_P(TransportConformance, RemoteRangeOutsideTheWindowIsDeniedAtTheTarget) {
  Check(Clause::kRemoteRangeOutsideTheWindowIsDeniedAtTheTarget);
}
TEST_P(TransportConformance, WrongRemoteKeyIsDeniedAtTheTarget) {
  Check(Clause::kWrongRemoteKeyIsDeniedAtTheTarget);
}
TEST_P(TransportConformance, NotificationFollowsTheDataOfCompletedWrites) {
  Check(Clause::kNotificationFollowsTheDataOfCompletedWrites);
}
TEST_P(TransportConformance, UnregisteredRangeIsNeverTouchedAgain) {
  Check(Clause::kUnregisteredRangeIsNeverTouchedAgain);
}
TEST_P(TransportConformance, ConnectTwiceReturnsOnePeerId) {
  Check(Clause::kConnectTwiceReturnsOnePeerId);
}
TEST_P(TransportConformance, CancelOfUnknownIdIsInvalidParams) {
  Check(Clause::kCancelOfUnknownIdIsInvalidParams);
}
TEST_P(TransportConformance, ProbeAnswersForALivePeerOnly) {
  Check(Clause::kProbeAnswersForALivePeerOnly);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TransportConformance,
                         ::testing::ValuesIn(RigBackendNames()),
                         [](const auto& info) { return info.param; });

// ---- planted bugs: every check can fail -----------------------------------------------

// Which clause each planted bug breaks (the table in the header).
Clause ClauseBrokenBy(TransportBug bug) {
  switch (bug) {
    case TransportBug::kCompleteRejected:
    case TransportBug::kMoveBytesOnRejected:
      return Clause::kRejectedTaskProducesNoCompletionAndMovesNoBytes;
    case TransportBug::kDropCompletion:
    case TransportBug::kCompleteTwice:
      return Clause::kEveryAcceptedTaskCompletesExactlyOnce;
    case TransportBug::kCancelDropsCompletion: return Clause::kCancelCompletesTheTaskExactlyOnce;
    case TransportBug::kOkBeforeVisible: return Clause::kOkMeansEveryByteIsVisibleAtTheTarget;
    case TransportBug::kOkOnShort: return Clause::kShortTransferIsIncompleteWithTheTrueCount;
    case TransportBug::kSkipLocalCheck:
      return Clause::kLocalRangeOutsideRegisteredMemoryIsNotRegistered;
    case TransportBug::kSkipWindowCheck:
      return Clause::kRemoteRangeOutsideTheWindowIsDeniedAtTheTarget;
    case TransportBug::kSkipKeyCheck: return Clause::kWrongRemoteKeyIsDeniedAtTheTarget;
    case TransportBug::kNotifyBeforeData:
      return Clause::kNotificationFollowsTheDataOfCompletedWrites;
    case TransportBug::kTouchAfterUnregister: return Clause::kUnregisteredRangeIsNeverTouchedAgain;
    case TransportBug::kDistinctPeerIds: return Clause::kConnectTwiceReturnsOnePeerId;
    case TransportBug::kCancelUnknownOk: return Clause::kCancelOfUnknownIdIsInvalidParams;
    case TransportBug::kProbeAlwaysOk: return Clause::kProbeAnswersForALivePeerOnly;
    case TransportBug::kNone: break;
  }
  TIDAL_ASSERT_MSG(false, "a planted bug without its clause");
  return Clause::kEveryAcceptedTaskCompletesExactlyOnce;
}

// Simulator transports, each wrapped in a BuggyTransport planting `bug`.
RigMaker BuggySim(TransportBug bug) {
  return [bug](RigOptions o) {
    auto bus = std::make_shared<BuggyBus>();
    o.wrap = [bug, bus](size_t, std::unique_ptr<Transport> t) -> std::unique_ptr<Transport> {
      return std::make_unique<BuggyTransport>(std::move(t), bug, bus);
    };
    return MakeTransportRig("sim", std::move(o));
  };
}

class PlantedBugs : public ::testing::TestWithParam<TransportBug> {};

TEST_P(PlantedBugs, TheCheckOfTheBrokenClauseFails) {
  const TransportBug bug = GetParam();
  const Clause clause = ClauseBrokenBy(bug);
  ClauseResult r = CheckClause(clause, BuggySim(bug), kSeeds);
  ASSERT_TRUE(r.skipped.empty()) << r.skipped;
  EXPECT_FALSE(r.violations.empty())
      << "the check of " << ClauseName(clause) << " passed a transport planted with "
      << TransportBugName(bug) << ": it cannot catch the bug it exists for";
  // Every seed must catch it, not only a lucky one: a violation per seed, plus its banner.
  size_t seeds_caught = 0;
  for (uint64_t seed : kSeeds) {
    const std::string tag = "seed " + std::to_string(seed) + ": ";
    for (const std::string& v : r.violations) {
      if (v.rfind(tag, 0) == 0) {
        ++seeds_caught;
        break;
      }
    }
  }
  EXPECT_EQ(seeds_caught, kSeeds.size()) << Lines(r.violations);
}

INSTANTIATE_TEST_SUITE_P(EveryBug, PlantedBugs, ::testing::ValuesIn(AllTransportBugs()),
                         [](const auto& info) {
                           return std::string(TransportBugName(info.param));
                         });

// The decorator with no bug is transparent: every check passes through it, so what the
// planted bugs trip is the bug, not the wrapping.
TEST(PlantedBugsControl, EveryCheckPassesThroughTheDecoratorWithoutABug) {
  for (Clause clause : AllClauses()) {
    ClauseResult r = CheckClause(clause, BuggySim(TransportBug::kNone), kSeeds);
    EXPECT_TRUE(r.skipped.empty()) << ClauseName(clause) << ": " << r.skipped;
    EXPECT_TRUE(r.violations.empty()) << ClauseName(clause) << ":\n" << Lines(r.violations);
  }
}

}  // namespace
}  // namespace tidal::testing
