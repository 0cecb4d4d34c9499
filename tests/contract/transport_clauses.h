// The clauses of the transport contract (transport.h), each as a check that drives raw
// transports through a TransportRig and returns the violations it saw (empty: the clause
// held). A check never asserts through gtest itself, so the planted-bug test can demand
// that it fails for the bug that breaks its clause and passes for a correct transport.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport_rig.h"

namespace tidal::testing {

enum class Clause : uint8_t {
  kRejectedTaskProducesNoCompletionAndMovesNoBytes,
  kEveryAcceptedTaskCompletesExactlyOnce,
  kCancelCompletesTheTaskExactlyOnce,
  kOkMeansEveryByteIsVisibleAtTheTarget,
  kShortTransferIsIncompleteWithTheTrueCount,
  kLocalRangeOutsideRegisteredMemoryIsNotRegistered,
  kRemoteRangeOutsideTheWindowIsDeniedAtTheTarget,
  kWrongRemoteKeyIsDeniedAtTheTarget,
  kNotificationFollowsTheDataOfCompletedWrites,
  kUnregisteredRangeIsNeverTouchedAgain,
  kConnectTwiceReturnsOnePeerId,
  kCancelOfUnknownIdIsInvalidParams,
  kProbeAnswersForALivePeerOnly,
};
std::string_view ClauseName(Clause clause);
std::vector<Clause> AllClauses();

struct ClauseResult {
  std::string skipped;                  // non-empty: the backend cannot run this check
  std::vector<std::string> violations;  // each with the seed; the last line replays it
};

// Builds a rig for one run of a check (the backend and any decorator are bound in).
using RigMaker = std::function<Result<std::unique_ptr<TransportRig>>(RigOptions)>;

// Runs the check of `clause` once per seed (the simulator's allowances reorder and delay
// differently under each) on fresh rigs.
ClauseResult CheckClause(Clause clause, const RigMaker& make, const std::vector<uint64_t>& seeds);

}  // namespace tidal::testing
