// Error codes shared by every layer of tidal.
//
// The numbers are part of the wire and log format and are never renumbered. Where
// Mooncake has the same concept tidal keeps its number and name, so a field report maps
// 1:1. Transfer-engine codes live in the -81x band, tidal's own codes (collectives,
// simulator verdicts) in the -50xx band. tests/unit/error_test.cc pins every value.
#pragma once

#include <cstdint>
#include <string_view>

namespace tidal {

enum class ErrorCode : int32_t {
  OK = 0,
  INTERNAL_ERROR = -1,
  BUFFER_OVERFLOW = -10,
  SEGMENT_NOT_FOUND = -101,
  NO_AVAILABLE_HANDLE = -200,
  INVALID_KEY = -400,
  INVALID_PARAMS = -600,
  REPLICA_IS_NOT_READY = -703,
  OBJECT_NOT_FOUND = -704,
  OBJECT_ALREADY_EXISTS = -705,
  OBJECT_HAS_LEASE = -706,
  LEASE_EXPIRED = -707,
  TRANSFER_FAIL = -800,
  CHECKSUM_MISMATCH = -801,
  // Transfer engine (-81x).
  ADDRESS_NOT_REGISTERED = -810,
  ADDRESS_OVERLAPPED = -811,
  BATCH_BUSY = -812,
  TRANSFER_INCOMPLETE = -813,
  REMOTE_ACCESS_DENIED = -814,
  PEER_UNREACHABLE = -815,
  TRANSFER_TIMEOUT = -816,      // a request outlived its deadline (state TIMED_OUT)
  TRANSFER_CANCELED = -817,     // a request was canceled before it finished
  REGISTRATION_FAILED = -818,   // the transport refused to register memory
  RPC_FAIL = -900,
  RPC_TIMEOUT = -901,
  // tidal's own (-50xx).
  RANK_FAILED = -5001,          // a collective finished, but some ranks failed
  COLLECTIVE_ABORTED = -5002,   // a collective could not finish over the survivors
  OPERATION_TIMEOUT = -5003,    // a store or collective operation outlived its timeout
  SIM_INVARIANT_VIOLATED = -5010,  // simulator verdict: a checker found a violation
  SIM_LIVENESS_VIOLATED = -5011,   // simulator verdict: an operation never finished
  CORRUPT_INPUT = -5020,        // a decoder found a malformed frame, trace or file
  UNSUPPORTED = -5030,          // the backend lacks the capability asked for
};

// Returns the enumerator's name ("ADDRESS_NOT_REGISTERED"), or "UNKNOWN" for a number
// that is not an enumerator. Thread-safe, never allocates.
std::string_view ErrorCodeName(ErrorCode code);

}  // namespace tidal
