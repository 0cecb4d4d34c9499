// The trace's file formats and the simulator's small entry points that the scenario
// suites do not reach: how Record escapes strings into JSON lines (exact text), the JSON
// lines file (header, events, footer with digest and verdict, byte for byte), the Chrome
// trace export (one instant event per line, one named track per node, times in µs),
// ParseLine's refusals (each names the field), SimFabric's copy helpers and its Crash
// entry point, Heal, the planted-bug names, and RunTransferWorkload's option checks.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tidal/sim/sim_fabric.h"
#include "tidal/sim/trace.h"
#include "tidal/sim/transfer_workload.h"

namespace tidal::sim {
namespace {

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::filesystem::path TempPath(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::filesystem::temp_directory_path() /
         (std::string("tidal_") + info->name() + "_" + name);
}

TEST(TraceFormat, RecordEscapesStringsAsJson) {
  Trace t;
  t.EnableLines(true);
  t.Record(5, 1, "op\"x", 2, {{"s", std::string_view("a\"b\\c\nd\te\x01")}, {"n", -3}});
  ASSERT_EQ(t.lines().size(), 1u);
  EXPECT_EQ(t.lines()[0],
            "{\"t\":5,\"node\":1,\"op\":\"op\\\"x\",\"tape\":2,"
            "\"s\":\"a\\\"b\\\\c\\nd\\te\\u0001\",\"n\":-3}");
  auto e = Trace::ParseLine(t.lines()[0]);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->op, "op\"x");
  ASSERT_EQ(e->args.size(), 2u);
  EXPECT_EQ(e->args[0], (std::pair<std::string, std::string>("n", "-3")));
  EXPECT_EQ(e->args[1].first, "s");
  EXPECT_EQ(nlohmann::json::parse(e->args[1].second).get<std::string>(), "a\"b\\c\nd\te\x01");
}

TEST(TraceFormat, WithoutLinesOnlyTheDigestMoves) {
  Trace a, b;
  a.Record(1, 0, "x", 0, {{"k", uint64_t{1}}});
  b.Record(1, 0, "x", 0, {{"k", uint64_t{2}}});
  EXPECT_TRUE(a.lines().empty());
  EXPECT_EQ(a.events(), 1u);
  EXPECT_NE(a.digest(), b.digest());
}

TEST(TraceFormat, JsonLinesFileHasHeaderEventsAndFooter) {
  Trace t;
  t.EnableLines(true);
  t.SetHeader("{\"tidal_trace\":1}");
  t.Record(10, 0, "a", 1, {});
  t.Record(20, -1, "b", 2, {{"v", uint64_t{7}}});
  const auto path = TempPath("trace.jsonl");
  ASSERT_TRUE(t.WriteJsonLines(path.string(), "PASS").ok());
  char digest[32];
  std::snprintf(digest, sizeof(digest), "%016llx", static_cast<unsigned long long>(t.digest()));
  EXPECT_EQ(Slurp(path), std::string("{\"tidal_trace\":1}\n") +
                             "{\"t\":10,\"node\":0,\"op\":\"a\",\"tape\":1}\n" +
                             "{\"t\":20,\"node\":-1,\"op\":\"b\",\"tape\":2,\"v\":7}\n" +
                             "{\"footer\":true,\"events\":2,\"digest\":\"" + digest +
                             "\",\"verdict\":\"PASS\"}\n");
  std::filesystem::remove(path);
}

TEST(TraceFormat, UnwritablePathsAreInvalidParams) {
  Trace t;
  const std::string bad = "/nonexistent-dir-tidal/trace.jsonl";
  EXPECT_EQ(t.WriteJsonLines(bad, "PASS").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(t.WriteChromeTrace(bad).code(), ErrorCode::INVALID_PARAMS);
}

TEST(TraceFormat, ChromeTraceHasOneTrackPerNodeAndMicroseconds) {
  const std::vector<std::string> lines = {
      "{\"t\":1500,\"node\":2,\"op\":\"xfer.submit\",\"tape\":4,\"len\":64}",
      "not json at all",
      "{\"t\":3000,\"node\":-1,\"op\":\"fault.heal\",\"tape\":5}",
      "{\"t\":4000,\"node\":2,\"op\":\"xfer.exec\",\"tape\":6}",
  };
  const auto path = TempPath("chrome.json");
  ASSERT_TRUE(Trace::WriteChromeTrace(lines, path.string()).ok());
  const nlohmann::json doc = nlohmann::json::parse(Slurp(path));
  std::filesystem::remove(path);
  EXPECT_EQ(doc["displayTimeUnit"], "ns");
  const auto& ev = doc["traceEvents"];
  ASSERT_EQ(ev.size(), 5u);  // three events (the bad line is skipped), two tracks
  EXPECT_EQ(ev[0]["name"], "xfer.submit");
  EXPECT_EQ(ev[0]["ph"], "i");
  EXPECT_EQ(ev[0]["ts"], 1.5);
  EXPECT_EQ(ev[0]["tid"], 2);
  EXPECT_EQ(ev[0]["args"]["len"], 64);
  EXPECT_EQ(ev[0]["args"]["tape"], 4);
  EXPECT_FALSE(ev[0]["args"].contains("t"));
  EXPECT_EQ(ev[1]["tid"], 999);  // world events get their own track
  EXPECT_EQ(ev[2]["ts"], 4.0);
  EXPECT_EQ(ev[3]["ph"], "M");
  EXPECT_EQ(ev[3]["args"]["name"], "node2");
  EXPECT_EQ(ev[4]["args"]["name"], "world");
}

TEST(TraceFormat, ParseLineNamesTheMissingField) {
  auto message = [](const char* line) { return Trace::ParseLine(line).status().message(); };
  EXPECT_EQ(message("[1]"), "trace line is not a JSON object");
  EXPECT_EQ(message("{\"node\":0,\"op\":\"x\",\"tape\":0}"),
            "trace line: field 't' missing or not unsigned");
  EXPECT_EQ(message("{\"t\":1,\"node\":\"0\",\"op\":\"x\",\"tape\":0}"),
            "trace line: field 'node' missing or not integer");
  EXPECT_EQ(message("{\"t\":1,\"node\":0,\"op\":7,\"tape\":0}"),
            "trace line: field 'op' missing or not a string");
  EXPECT_EQ(message("{\"t\":1,\"node\":0,\"op\":\"x\",\"tape\":-1}"),
            "trace line: field 'tape' missing or not unsigned");
  EXPECT_EQ(Trace::ParseLine("{\"t\":1}").code(), ErrorCode::CORRUPT_INPUT);
}

TEST(SimFabricExtra, CopyHelpersCrashAndHeal) {
  SimFabricOptions o;
  o.world.nodes = 2;
  o.world.seed = 3;
  SimFabric f(std::move(o));
  auto* p = static_cast<uint8_t*>(f.Allocate(1, 16, Location::Cuda(0)));
  const uint8_t src[4] = {1, 2, 3, 4};
  f.CopyIn(p + 4, src, 4);
  uint8_t out[8] = {};
  f.CopyOut(out, p + 2, 8);
  EXPECT_EQ(std::vector<uint8_t>(out, out + 8), (std::vector<uint8_t>{0, 0, 1, 2, 3, 4, 0, 0}));
  EXPECT_NE(f.Allocate(0, 0, Location::Host()), nullptr);  // zero bytes still a valid pointer

  f.world().Partition({0}, {1}, 0);
  EXPECT_FALSE(f.world().Linked(0, 1));
  f.world().Heal();
  EXPECT_TRUE(f.world().Linked(0, 1));

  EXPECT_EQ(f.Crash(2).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(f.Crash(1).ok());
  EXPECT_FALSE(f.world().alive(1));
  EXPECT_TRUE(f.world().alive(0));
}

TEST(PlantedBugNames, RoundTripAndUnknown) {
  for (PlantedBug b : kPlantedBugs) {
    auto parsed = ParsePlantedBug(PlantedBugName(b));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, b);
  }
  EXPECT_EQ(PlantedBugName(static_cast<PlantedBug>(99)), "unknown");
  auto bad = ParsePlantedBug("off_by_one");
  EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(bad.status().message(),
            "unknown planted bug 'off_by_one' (none, short_as_complete, ignore_remote_key, "
            "ignore_window, write_off_by_one, complete_before_visible)");
}

TEST(TransferWorkloadOptionsCheck, BadOptionsAreRefusedBeforeARun) {
  auto code = [](auto edit) {
    TransferWorkloadOptions o;
    edit(o);
    return RunTransferWorkload(o).code();
  };
  EXPECT_EQ(code([](auto& o) { o.nodes = 0; }), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(code([](auto& o) { o.nodes = 257; }), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(code([](auto& o) { o.slots = 1; }), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(code([](auto& o) { o.slot_bytes = 4096; }), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(code([](auto& o) { o.slice_bytes = 0; }), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(code([](auto& o) { o.fault_mix = "crash,tornado"; }), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(code([](auto& o) { o.fault_script = "crash at=1ms\n"; }), ErrorCode::CORRUPT_INPUT);
}

TEST(TransferWorkloadHeaderCheck, EachBadFieldIsNamed) {
  TransferWorkloadOptions o;
  o.seed = 9;
  o.fault_script = "hang node=1 at=1ms for=1ms\n";
  o.planted_bug = PlantedBug::kIgnoreRemoteKey;
  const std::string header = TransferWorkloadHeader(o);
  auto back = ParseTransferWorkloadHeader(header);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->seed, 9u);
  EXPECT_EQ(back->fault_script, o.fault_script);
  EXPECT_EQ(back->planted_bug, PlantedBug::kIgnoreRemoteKey);

  nlohmann::json j = nlohmann::json::parse(header);
  for (const char* field : {"tidal_trace", "workload", "seed", "nodes", "ops_per_node", "slots",
                            "slot_bytes", "slice_bytes", "timeout_ns", "fault_mix",
                            "fault_script", "planted_bug"}) {
    nlohmann::json broken = j;
    broken[field] = nlohmann::json::array();
    auto r = ParseTransferWorkloadHeader(broken.dump());
    EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT) << field;
    EXPECT_EQ(r.status().message(),
              std::string("trace header: field '") + field + "' is missing or has the wrong type")
        << field;
  }
  nlohmann::json unknown_bug = j;
  unknown_bug["planted_bug"] = "off_by_one";
  EXPECT_EQ(ParseTransferWorkloadHeader(unknown_bug.dump()).status().message(),
            "trace header: field 'planted_bug' is missing or has the wrong type");
  EXPECT_EQ(ParseTransferWorkloadHeader("[]").status().message(),
            "trace header is not a JSON object");
}

}  // namespace
}  // namespace tidal::sim
