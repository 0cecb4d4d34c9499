// Pins every ErrorCode number and name. The numbers are part of logs and field reports
// (and match Mooncake where the concept exists), so renumbering one must fail here.
#include <gtest/gtest.h>

#include "tidal/error.h"
#include "tidal/status.h"

namespace tidal {
namespace {

struct Pin {
  ErrorCode code;
  int32_t value;
  const char* name;
};

TEST(ErrorCode, EveryValueIsPinned) {
  const Pin pins[] = {
      {ErrorCode::OK, 0, "OK"},
      {ErrorCode::INTERNAL_ERROR, -1, "INTERNAL_ERROR"},
      {ErrorCode::BUFFER_OVERFLOW, -10, "BUFFER_OVERFLOW"},
      {ErrorCode::SEGMENT_NOT_FOUND, -101, "SEGMENT_NOT_FOUND"},
      {ErrorCode::NO_AVAILABLE_HANDLE, -200, "NO_AVAILABLE_HANDLE"},
      {ErrorCode::INVALID_KEY, -400, "INVALID_KEY"},
      {ErrorCode::INVALID_PARAMS, -600, "INVALID_PARAMS"},
      {ErrorCode::REPLICA_IS_NOT_READY, -703, "REPLICA_IS_NOT_READY"},
      {ErrorCode::OBJECT_NOT_FOUND, -704, "OBJECT_NOT_FOUND"},
      {ErrorCode::OBJECT_ALREADY_EXISTS, -705, "OBJECT_ALREADY_EXISTS"},
      {ErrorCode::OBJECT_HAS_LEASE, -706, "OBJECT_HAS_LEASE"},
      {ErrorCode::LEASE_EXPIRED, -707, "LEASE_EXPIRED"},
      {ErrorCode::TRANSFER_FAIL, -800, "TRANSFER_FAIL"},
      {ErrorCode::CHECKSUM_MISMATCH, -801, "CHECKSUM_MISMATCH"},
      {ErrorCode::ADDRESS_NOT_REGISTERED, -810, "ADDRESS_NOT_REGISTERED"},
      {ErrorCode::ADDRESS_OVERLAPPED, -811, "ADDRESS_OVERLAPPED"},
      {ErrorCode::BATCH_BUSY, -812, "BATCH_BUSY"},
      {ErrorCode::TRANSFER_INCOMPLETE, -813, "TRANSFER_INCOMPLETE"},
      {ErrorCode::REMOTE_ACCESS_DENIED, -814, "REMOTE_ACCESS_DENIED"},
      {ErrorCode::PEER_UNREACHABLE, -815, "PEER_UNREACHABLE"},
      {ErrorCode::TRANSFER_TIMEOUT, -816, "TRANSFER_TIMEOUT"},
      {ErrorCode::TRANSFER_CANCELED, -817, "TRANSFER_CANCELED"},
      {ErrorCode::REGISTRATION_FAILED, -818, "REGISTRATION_FAILED"},
      {ErrorCode::RPC_FAIL, -900, "RPC_FAIL"},
      {ErrorCode::RPC_TIMEOUT, -901, "RPC_TIMEOUT"},
      {ErrorCode::RANK_FAILED, -5001, "RANK_FAILED"},
      {ErrorCode::COLLECTIVE_ABORTED, -5002, "COLLECTIVE_ABORTED"},
      {ErrorCode::OPERATION_TIMEOUT, -5003, "OPERATION_TIMEOUT"},
      {ErrorCode::SIM_INVARIANT_VIOLATED, -5010, "SIM_INVARIANT_VIOLATED"},
      {ErrorCode::SIM_LIVENESS_VIOLATED, -5011, "SIM_LIVENESS_VIOLATED"},
      {ErrorCode::CORRUPT_INPUT, -5020, "CORRUPT_INPUT"},
      {ErrorCode::UNSUPPORTED, -5030, "UNSUPPORTED"},
  };
  for (const Pin& p : pins) {
    EXPECT_EQ(static_cast<int32_t>(p.code), p.value) << p.name;
    EXPECT_EQ(ErrorCodeName(p.code), p.name);
  }
  EXPECT_EQ(ErrorCodeName(static_cast<ErrorCode>(-12345)), "UNKNOWN");
}

TEST(Status, OkCarriesNoMessageAndFailureNamesItsCode) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.code(), ErrorCode::OK);
  EXPECT_TRUE(ok.message().empty());
  Status bad(ErrorCode::ADDRESS_NOT_REGISTERED, "local range is not registered");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.ToString(), "ADDRESS_NOT_REGISTERED(-810): local range is not registered");
}

TEST(Result, HoldsValueOrFailure) {
  Result<int> v(7);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 7);
  EXPECT_EQ(v.code(), ErrorCode::OK);
  Result<int> e(ErrorCode::OBJECT_NOT_FOUND, "no key k");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(e.status().message(), "no key k");
}

TEST(ResultDeathTest, OkStatusWithoutValueIsABrokenInvariant) {
  EXPECT_DEATH({ Result<int> r{Status()}; }, "TIDAL_ASSERT failed");
}

}  // namespace
}  // namespace tidal
