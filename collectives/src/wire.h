// Wire formats of the process group (private to collectives/).
//
// Three small binary formats, each starting with a magic byte and a version, all
// little-endian, fixed or length-checked, decoded without ever reading past the input
// (remote bytes are input: a malformed one is CORRUPT_INPUT, never an assertion):
//  * DataHeader: the engine notification that follows each chunk WRITE ("the sync flag"),
//    the credit a receiver returns when it has consumed a slot, and the pull offer of a
//    sender whose message the receiver READs itself (see pg_channel.cc, "Pulled messages");
//  * ControlMessage: the agreement protocol over the Messenger (report, decision, query,
//    abort);
//  * BootstrapRecord: what each rank publishes in the MetadataStore.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tidal/status.h"

namespace tidal::coll {

// Channel classes: collectives and point-to-point use separate slots, so an unreceived
// p2p message never blocks a collective.
enum class ChannelClass : uint8_t { kColl = 0, kP2p = 1 };
constexpr int kChannelClasses = 2;
constexpr int kSlotsPerChannel = 2;  // double buffering

struct DataHeader {
  // kPull: a pull offer (collective channels only). The whole message of `bytes` lies in
  // the sender's registered memory at address `offset`; the receiver READs it and its
  // credit covering `seq` says it has finished reading.
  enum class Kind : uint8_t { kData = 1, kCredit = 2, kPull = 3 };
  Kind kind = Kind::kData;
  ChannelClass cls = ChannelClass::kColl;
  uint32_t from = 0;     // sender rank
  uint64_t group = 0;    // hash of the group name
  uint64_t attempt = 0;  // collective attempt key (op, epoch); 0 for p2p
  uint64_t seq = 0;      // data: chunk sequence in the attempt; credit: chunks consumed
  uint64_t bytes = 0;    // data: bytes in the slot
  uint32_t tag = 0;      // p2p tag
  uint64_t total = 0;    // p2p: bytes of the whole message; chunk 0 starts a message
  uint64_t offset = 0;   // p2p: offset of this chunk in the message; pull: the address
  bool operator==(const DataHeader&) const = default;
};
constexpr uint8_t kDataMagic = 0xC1;
std::string EncodeDataHeader(const DataHeader& h);
Result<DataHeader> DecodeDataHeader(std::string_view bytes);

struct ControlMessage {
  enum class Kind : uint8_t { kReport = 1, kDecision = 2, kQuery = 3, kAbort = 4 };
  Kind kind = Kind::kReport;
  uint32_t from = 0;
  uint64_t group = 0;
  uint64_t op = 0;      // collective sequence number
  uint32_t epoch = 0;   // attempt within the op
  bool done = false;    // report: the attempt's data movement finished cleanly
  bool commit = false;  // decision: commit (true) or retry over `view` (false)
  uint64_t dead = 0;    // report/abort: ranks the sender knows are dead (bit per rank)
  uint64_t view = 0;    // decision: the members of the committed or next attempt
  bool operator==(const ControlMessage&) const = default;
};
constexpr uint8_t kControlMagic = 0xC2;
std::string EncodeControl(const ControlMessage& m);
Result<ControlMessage> DecodeControl(std::string_view bytes);

struct BootstrapRecord {
  uint32_t rank = 0;
  uint32_t size = 0;
  uint64_t slot_bytes = 0;
  uint64_t recv_addr = 0;  // base of the rank's registered receive slots
  uint64_t recv_bytes = 0;
  std::string segment;   // the rank's TransferEngine segment
  std::string endpoint;  // the rank's Messenger endpoint
  bool operator==(const BootstrapRecord&) const = default;
};
constexpr uint8_t kBootstrapMagic = 0xC3;
std::string EncodeBootstrap(const BootstrapRecord& r);
Result<BootstrapRecord> DecodeBootstrap(std::string_view bytes);

// FNV-1a of the group name (tags every message so two groups never mix).
uint64_t GroupHash(std::string_view name);

}  // namespace tidal::coll
