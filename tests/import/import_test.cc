// tidal-sim import end to end: a workload of WRITEs, each read back, runs over UCX with a
// planted transport bug (the target of an eager WRITE drops its last byte and acknowledges
// OK) while RecordingTransport records it; the trace is imported into a simulator
// scenario, which fails on the simulator with the same invariant at the same operation and
// byte, and shrinks to one WRITE with one fault. Without the bug the same workload passes
// over UCX. The other tests check the import's handling of bad input and the scenario file.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tidal/recording_transport.h"
#include "tidal/sim/import.h"

#ifdef TIDAL_IMPORT_UCX
#include "tidal/backends/ucx/ucx_fabric.h"
#endif

namespace tidal::sim {
namespace {

constexpr char kWriteInvariant[] =
    "a WRITE reported COMPLETED but the target's bytes differ from its source";

// 3 nodes, one 64 KiB region each; `pairs` WRITEs of 1..1024 bytes (last byte never 0, so
// a dropped last byte always shows against zeroed memory), each followed by a READ of the
// same remote range into another place of the writer's region.
TransferScript Workload(size_t pairs) {
  TransferScript s;
  s.nodes = 3;
  for (uint32_t n = 0; n < 3; ++n) s.regions.push_back({n, 64 * 1024});
  uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&x](uint64_t bound) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x % bound;
  };
  for (size_t i = 0; i < pairs; ++i) {
    ScriptOp w;
    w.node = static_cast<uint32_t>(next(3));
    w.peer = static_cast<uint32_t>((w.node + 1 + next(2)) % 3);
    w.op = TransferOp::kWrite;
    w.local_region = w.node;
    w.remote_region = w.peer;
    w.length = 1 + next(1024);
    w.local_off = next(16 * 1024);
    w.remote_off = 2048 * i;  // every WRITE to fresh (zeroed) target memory
    w.data.resize(w.length);
    for (char& c : w.data) c = static_cast<char>(next(256));
    w.data.back() = static_cast<char>(1 + next(255));
    ScriptOp r = w;
    r.op = TransferOp::kRead;
    r.data.clear();
    r.local_off = 32 * 1024 + next(16 * 1024);
    s.ops.push_back(w);
    s.ops.push_back(r);
  }
  return s;
}

#ifdef TIDAL_IMPORT_UCX
Result<ScriptRun> RunOnUcx(const TransferScript& s, backends::ucx::UcxBug bug,
                           const std::string& record) {
  backends::ucx::UcxFabricOptions o;
  o.nodes = s.nodes;
  o.transport.planted_bug = bug;
  o.record_path = record;
  Result<std::unique_ptr<backends::ucx::UcxFabric>> f = backends::ucx::UcxFabric::Make(o);
  if (!f.ok()) return f.status();
  return RunTransferScript(**f, s);  // the fabric (and its recorders) end here
}

TEST(ImportUcx, PlantedWriteBugRecordedOnUcxReplaysOnTheSimulatorAndShrinks) {
  const TransferScript workload = Workload(6);
  const std::string trace = ::testing::TempDir() + "import_ucx_trace.jsonl";

  // Over UCX with the bug: the first WRITE already breaks the promise.
  Result<ScriptRun> ucx = RunOnUcx(workload, backends::ucx::UcxBug::kWriteDropsLastByte, trace);
  ASSERT_TRUE(ucx.ok()) << ucx.status().ToString();
  ASSERT_FALSE(ucx->passed);
  EXPECT_EQ(ucx->invariant, kWriteInvariant);
  EXPECT_EQ(ucx->ops_run, workload.ops.size());
  EXPECT_EQ(ucx->failed_ops, 0u);

  // The trace becomes a scenario: the same 12 operations, each WRITE short by one byte
  // and reported complete (what the READ after it found).
  Result<TransferScript> imported = ImportTrace(trace);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  ASSERT_EQ(imported->nodes, 3u);
  ASSERT_EQ(imported->regions.size(), 3u);
  ASSERT_EQ(imported->ops.size(), workload.ops.size());
  for (size_t i = 0; i < workload.ops.size(); ++i) {
    const ScriptOp& got = imported->ops[i];
    const ScriptOp& want = workload.ops[i];
    EXPECT_EQ(got.op, want.op) << i;
    EXPECT_EQ(got.node, want.node) << i;
    EXPECT_EQ(got.peer, want.peer) << i;
    EXPECT_EQ(got.length, want.length) << i;
    EXPECT_EQ(got.local_off, want.local_off) << i;
    EXPECT_EQ(got.remote_off, want.remote_off) << i;
    EXPECT_EQ(got.data, want.data) << i;
    EXPECT_EQ(got.short_by, want.op == TransferOp::kWrite ? 1u : 0u) << i;
    EXPECT_EQ(got.reported_ok, want.op == TransferOp::kWrite) << i;
  }
  EXPECT_EQ(imported->faults(), 6u);

  // On the simulator: the same invariant, at the same operation and byte.
  Result<ScriptRun> sim = RunTransferScriptOnSim(*imported);
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  ASSERT_FALSE(sim->passed);
  EXPECT_EQ(sim->invariant, ucx->invariant);
  EXPECT_EQ(sim->violation, ucx->violation);

  // The scenario file round-trips.
  Result<TransferScript> again = TransferScript::FromJson(imported->ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Result<ScriptRun> sim2 = RunTransferScriptOnSim(*again);
  ASSERT_TRUE(sim2.ok());
  EXPECT_EQ(sim2->violation, sim->violation);

  // Shrunk: one WRITE with its fault; without the fault it passes.
  Result<ScriptShrinkResult> shrunk = ShrinkTransferScript(*imported);
  ASSERT_TRUE(shrunk.ok()) << shrunk.status().ToString();
  ASSERT_EQ(shrunk->script.ops.size(), 1u);
  EXPECT_EQ(shrunk->script.ops[0].op, TransferOp::kWrite);
  EXPECT_EQ(shrunk->script.faults(), 1u);
  EXPECT_EQ(shrunk->run.invariant, kWriteInvariant);
  TransferScript healed = shrunk->script;
  healed.ops[0].short_by = 0;
  healed.ops[0].reported_ok = false;
  Result<ScriptRun> clean = RunTransferScriptOnSim(healed);
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE(clean->passed) << clean->violation;

  // Without the planted bug the same workload passes over UCX.
  Result<ScriptRun> fixed = RunOnUcx(workload, backends::ucx::UcxBug::kNone, "");
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_TRUE(fixed->passed) << fixed->violation;
  if (std::getenv("TIDAL_IMPORT_KEEP") == nullptr) std::remove(trace.c_str());
}
#endif

TEST(Import, TheWorkloadPassesOnTheSimulatorWithoutFaults) {
  Result<ScriptRun> r = RunTransferScriptOnSim(Workload(6));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->passed) << r->violation;
  EXPECT_EQ(r->ops_run, 12u);
}

TEST(Import, AShortWriteReportedCompleteBreaksTheWriteInvariant) {
  TransferScript s = Workload(1);
  s.ops[0].short_by = 3;
  s.ops[0].reported_ok = true;
  Result<ScriptRun> r = RunTransferScriptOnSim(s);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->passed);
  EXPECT_EQ(r->invariant, kWriteInvariant);
  EXPECT_NE(r->violation.find("first at byte " + std::to_string(s.ops[0].length - 3)),
            std::string::npos)
      << r->violation;
  // Reported as TRANSFER_INCOMPLETE instead, the short write breaks nothing.
  s.ops[0].reported_ok = false;
  r = RunTransferScriptOnSim(s);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->passed) << r->violation;
  EXPECT_EQ(r->failed_ops, 1u);
}

TEST(Import, AMissingTraceIsNamed) {
  Result<TransferScript> r = ImportTrace("/nonexistent/trace.jsonl");
  EXPECT_EQ(r.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(r.status().ToString().find("/nonexistent/trace.jsonl"), std::string::npos);
}

TEST(Import, ABadLineIsNamedByNumber) {
  const std::string path = ::testing::TempDir() + "import_bad.jsonl";
  {
    std::ofstream out(path);
    out << "{\"ev\":\"install\",\"node\":0,\"t\":1,\"segment\":\"node0\"}\n";
    out << "{\"ev\":\"register\",\"node\":0,\"t\":2,\"addr\":4096,\"len\":64,\"host\":true}\n";
    out << "not json\n";
  }
  Result<TransferScript> r = ImportTrace(path);
  EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(r.status().ToString().find("trace line 3"), std::string::npos) << r.status().ToString();
  {
    std::ofstream out(path);
    out << "{\"ev\":\"install\",\"node\":0,\"t\":1}\n";
  }
  r = ImportTrace(path);
  EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(r.status().ToString().find("field 'segment' is missing"), std::string::npos)
      << r.status().ToString();
  std::remove(path.c_str());
}

// A WRITE recorded without its bytes (longer than the recorder keeps) still imports: it
// replays with filler bytes and says so; a READ of its range then teaches nothing.
TEST(Import, AWriteRecordedWithoutItsBytesReplaysWithFiller) {
  const std::string path = ::testing::TempDir() + "import_nodata.jsonl";
  {
    std::ofstream out(path);
    out << "{\"ev\":\"install\",\"node\":0,\"t\":1,\"segment\":\"node0\"}\n"
        << "{\"ev\":\"install\",\"node\":1,\"t\":1,\"segment\":\"node1\"}\n"
        << "{\"ev\":\"register\",\"node\":0,\"t\":2,\"addr\":4096,\"len\":256,\"host\":true}\n"
        << "{\"ev\":\"register\",\"node\":1,\"t\":2,\"addr\":8192,\"len\":256,\"host\":true}\n"
        << "{\"ev\":\"connect\",\"node\":0,\"t\":3,\"segment\":\"node1\",\"peer\":5}\n"
        << "{\"ev\":\"submit\",\"node\":0,\"t\":4,\"task\":1,\"kind\":\"write\",\"peer\":5,"
           "\"local\":4096,\"remote\":8200,\"len\":16,\"code\":\"OK\",\"data_truncated\":true}\n"
        << "{\"ev\":\"complete\",\"node\":0,\"t\":5,\"task\":1,\"code\":\"OK\",\"bytes\":16}\n"
        << "{\"ev\":\"submit\",\"node\":0,\"t\":6,\"task\":2,\"kind\":\"read\",\"peer\":5,"
           "\"local\":4200,\"remote\":8200,\"len\":4,\"code\":\"OK\"}\n"
        << "{\"ev\":\"complete\",\"node\":0,\"t\":7,\"task\":2,\"code\":\"OK\",\"bytes\":4,"
           "\"data\":\"00000000\"}\n";
  }
  Result<TransferScript> r = ImportTrace(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->ops.size(), 2u);
  EXPECT_EQ(r->ops[0].peer, 1u);
  EXPECT_EQ(r->ops[0].remote_off, 8u);
  EXPECT_EQ(r->ops[0].data.size(), 16u);
  EXPECT_EQ(r->ops[1].local_off, 104u);
  EXPECT_EQ(r->faults(), 0u);  // the READ found zeros, but nothing was known there
  ASSERT_FALSE(r->notes.empty());
  EXPECT_NE(r->notes[0].find("without its bytes"), std::string::npos) << r->notes[0];
  Result<ScriptRun> run = RunTransferScriptOnSim(*r);
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->passed) << run->violation;
  std::remove(path.c_str());
}

TEST(Import, AScenarioThatPointsOutsideItselfIsRefused) {
  TransferScript s = Workload(1);
  s.ops[0].remote_off = 64 * 1024;  // past the end of the region
  Result<TransferScript> r = TransferScript::FromJson(s.ToJson());
  EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_EQ(TransferScript::FromJson("[1,2]").code(), ErrorCode::CORRUPT_INPUT);
}

// The recorder writes one JSON object a line and hands every call through.
TEST(Import, RecordingTransportWritesOneLinePerEvent) {
  const std::string path = ::testing::TempDir() + "import_sink.jsonl";
  Result<std::shared_ptr<TraceSink>> sink = TraceSink::Open(path);
  ASSERT_TRUE(sink.ok());
  (*sink)->Write("{\"ev\":\"x\"}");
  (*sink)->Write("{\"ev\":\"y\"}");
  std::ifstream in(path);
  std::string a, b, c;
  std::getline(in, a);
  std::getline(in, b);
  EXPECT_EQ(a, "{\"ev\":\"x\"}");
  EXPECT_EQ(b, "{\"ev\":\"y\"}");
  EXPECT_FALSE(std::getline(in, c));
  EXPECT_EQ(TraceSink::Open("/nonexistent/dir/t.jsonl").code(), ErrorCode::INVALID_PARAMS);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tidal::sim
