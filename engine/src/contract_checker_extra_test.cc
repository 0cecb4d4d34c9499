// ContractChecker catches every lie it documents. A scripted transport (below) returns
// whatever each test tells it to (a zero remote key, a completion for a task that was
// never accepted, OK with bytes missing, bytes moved on a refused access...), and each
// test asserts the exact violation the checker records, and that an honest answer records
// none. With abort_on_violation the checker aborts through TIDAL_ASSERT, which prints the
// expression and runs the installed assert hook first (death tests).
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "tidal/contract_checker.h"
#include "tidal/status.h"

namespace tidal {
namespace {

// A transport that does what the test scripted and remembers what it was asked.
class ScriptedTransport final : public Transport {
 public:
  Result<uint64_t> next_register = uint64_t{7};
  std::vector<Status> accept;               // per submitted task; OK when missing
  std::deque<TransportCompletion> pending;  // reported by PollCompletions, in order
  size_t report_extra = 0;                  // claim this many more completions than fit
  Status next_cancel;
  int installs = 0, submits = 0;

  std::string_view Name() const override { return "scripted"; }
  TransportCaps Capabilities() const override { return {true, false, false, true}; }
  Status Install(const TransportInstall&) override {
    ++installs;
    return Status();
  }
  std::string LocalAddress() const override { return "nowhere"; }
  Result<uint64_t> RegisterMemory(uint64_t, uint64_t, Location) override { return next_register; }
  Status UnregisterMemory(uint64_t, uint64_t) override { return Status(); }
  Result<PeerId> Connect(const SegmentDescriptor&) override { return PeerId{1}; }
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override {
    ++submits;
    for (size_t i = 0; i < tasks.size(); ++i) accepted[i] = i < accept.size() ? accept[i] : Status();
  }
  size_t PollCompletions(std::span<TransportCompletion> out) override {
    size_t n = 0;
    while (n < out.size() && !pending.empty()) {
      out[n++] = pending.front();
      pending.pop_front();
    }
    return n + report_extra;
  }
  Status Cancel(uint64_t) override { return next_cancel; }
  Status SendNotify(PeerId, std::string_view) override { return Status(); }
  size_t PollNotifies(std::vector<Notification>&, size_t) override { return 0; }
};

class ContractCheckerExtra : public ::testing::Test {
 protected:
  ContractCheckerExtra() {
    auto t = std::make_unique<ScriptedTransport>();
    inner_ = t.get();
    checker_ = std::make_unique<ContractChecker>(std::move(t), /*abort_on_violation=*/false);
  }
  static TransportTask Task(uint64_t id, uint64_t length) {
    TransportTask t;
    t.task_id = id;
    t.kind = TransportTask::Kind::kWrite;
    t.length = length;
    return t;
  }
  void Submit(std::vector<TransportTask> tasks) {
    std::vector<Status> accepted(tasks.size());
    checker_->Submit(tasks, accepted);
  }
  size_t Poll(std::vector<TransportCompletion> completions, size_t room = 8) {
    for (const auto& c : completions) inner_->pending.push_back(c);
    std::vector<TransportCompletion> out(room);
    return checker_->PollCompletions(out);
  }
  std::vector<std::string> Violations() const { return checker_->violations(); }
  static std::string Line(const std::string& what) {
    return "transport 'scripted' broke its contract: " + what;
  }

  ScriptedTransport* inner_;
  std::unique_ptr<ContractChecker> checker_;
};

TEST_F(ContractCheckerExtra, ForwardsNameCapabilitiesAndAddress) {
  EXPECT_EQ(checker_->Name(), "scripted");
  EXPECT_TRUE(checker_->Capabilities().host_to_host);
  EXPECT_TRUE(checker_->Capabilities().notifications);
  EXPECT_FALSE(checker_->Capabilities().cuda_to_cuda);
  EXPECT_EQ(checker_->LocalAddress(), "nowhere");
  EXPECT_EQ(&checker_->inner(), inner_);
}

TEST_F(ContractCheckerExtra, InstallNeedsAnEnvAndACallback) {
  TransportInstall install;
  Status s = checker_->Install(install);
  EXPECT_EQ(s.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(s.message(), "install needs an env and an on_ready callback");
  EXPECT_EQ(inner_->installs, 0);
  EXPECT_TRUE(Violations().empty());
}

TEST_F(ContractCheckerExtra, ZeroRemoteKeyIsAViolation) {
  inner_->next_register = uint64_t{0};
  auto r = checker_->RegisterMemory(0x1000, 64, Location::Host());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Violations(), std::vector<std::string>{Line("RegisterMemory returned remote key 0")});
}

TEST_F(ContractCheckerExtra, RegistrationMayFailOnlyWithItsOwnCodes) {
  inner_->next_register = Status(ErrorCode::REGISTRATION_FAILED, "no pinning today");
  EXPECT_EQ(checker_->RegisterMemory(0x1000, 64, Location::Host()).code(),
            ErrorCode::REGISTRATION_FAILED);
  inner_->next_register = Status(ErrorCode::UNSUPPORTED, "no cuda");
  EXPECT_EQ(checker_->RegisterMemory(0x1000, 64, Location::Cuda(0)).code(),
            ErrorCode::UNSUPPORTED);
  EXPECT_TRUE(Violations().empty());
  inner_->next_register = Status(ErrorCode::INVALID_PARAMS, "bad");
  EXPECT_EQ(checker_->RegisterMemory(0x1000, 64, Location::Host()).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(Violations(),
            std::vector<std::string>{Line("RegisterMemory failed with INVALID_PARAMS(-600): bad "
                                          "(expected REGISTRATION_FAILED or UNSUPPORTED)")});
}

TEST_F(ContractCheckerExtra, MismatchedSpansAreRefusedBeforeTheTransport) {
  std::vector<TransportTask> tasks = {Task(1, 8), Task(2, 8)};
  std::vector<Status> accepted(1);
  checker_->Submit(tasks, accepted);
  EXPECT_EQ(inner_->submits, 0);
  EXPECT_EQ(Violations(), std::vector<std::string>{Line("Submit called with mismatched spans")});
}

TEST_F(ContractCheckerExtra, ResubmittingAnOutstandingIdIsAViolation) {
  Submit({Task(5, 8)});
  EXPECT_EQ(checker_->outstanding(), 1u);
  Submit({Task(5, 8)});
  EXPECT_EQ(Violations(),
            std::vector<std::string>{Line("task id 5 submitted while outstanding")});
}

TEST_F(ContractCheckerExtra, HonestCompletionsRecordNothing) {
  inner_->accept = {Status(), Status(), Status(), Status()};
  Submit({Task(1, 100), Task(2, 100), Task(3, 100), Task(4, 100)});
  EXPECT_EQ(Poll({{1, ErrorCode::OK, 100},
                  {2, ErrorCode::TRANSFER_INCOMPLETE, 40},
                  {3, ErrorCode::REMOTE_ACCESS_DENIED, 0},
                  {4, ErrorCode::ADDRESS_NOT_REGISTERED, 0}}),
            4u);
  EXPECT_TRUE(Violations().empty());
  EXPECT_EQ(checker_->outstanding(), 0u);
}

TEST_F(ContractCheckerExtra, EveryLyingCompletionIsNamed) {
  Submit({Task(1, 100), Task(2, 100), Task(3, 100), Task(4, 100), Task(5, 100)});
  EXPECT_EQ(Poll({{1, ErrorCode::OK, 101},
                  {2, ErrorCode::OK, 99},
                  {3, ErrorCode::TRANSFER_INCOMPLETE, 100},
                  {4, ErrorCode::ADDRESS_NOT_REGISTERED, 1},
                  {5, ErrorCode::REMOTE_ACCESS_DENIED, 2},
                  {9, ErrorCode::OK, 0}}),
            6u);
  const std::vector<std::string> want = {
      Line("task 1: bytes_transferred 101 exceeds length 100"),
      Line("task 1: OK with 101 of 100 bytes"),
      Line("task 2: OK with 99 of 100 bytes"),
      Line("task 3: TRANSFER_INCOMPLETE but every byte moved"),
      Line("task 4: ADDRESS_NOT_REGISTERED yet bytes moved"),
      Line("task 5: REMOTE_ACCESS_DENIED yet bytes moved"),
      Line("completion for task 9 that is not outstanding (duplicate, rejected or never "
           "submitted)")};
  EXPECT_EQ(Violations(), want);
}

TEST_F(ContractCheckerExtra, RejectedTasksNeverComplete) {
  inner_->accept = {Status(ErrorCode::ADDRESS_NOT_REGISTERED, "no")};
  Submit({Task(1, 8)});
  EXPECT_EQ(checker_->outstanding(), 0u);
  Poll({{1, ErrorCode::OK, 8}});
  EXPECT_EQ(Violations(),
            std::vector<std::string>{Line("completion for task 1 that is not outstanding "
                                          "(duplicate, rejected or never submitted)")});
}

TEST_F(ContractCheckerExtra, MoreCompletionsThanRoomIsAViolation) {
  Submit({Task(1, 8)});
  inner_->report_extra = 1;
  EXPECT_EQ(Poll({{1, ErrorCode::OK, 8}}, /*room=*/1), 0u);
  EXPECT_EQ(Violations(), std::vector<std::string>{Line(
                              "PollCompletions reported more completions than it had room for")});
}

TEST_F(ContractCheckerExtra, CancelAnswersAreChecked) {
  inner_->next_cancel = Status(ErrorCode::INVALID_PARAMS, "unknown");
  EXPECT_EQ(checker_->Cancel(42).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(Violations().empty());
  inner_->next_cancel = Status();
  EXPECT_TRUE(checker_->Cancel(43).ok());
  Submit({Task(7, 8)});
  inner_->next_cancel = Status(ErrorCode::INTERNAL_ERROR, "stuck");
  EXPECT_EQ(checker_->Cancel(7).code(), ErrorCode::INTERNAL_ERROR);
  const std::vector<std::string> want = {
      Line("Cancel of unknown task 43 returned OK(0)"),
      Line("Cancel of outstanding task 7 failed: INTERNAL_ERROR(-1): stuck")};
  EXPECT_EQ(Violations(), want);
}

TEST_F(ContractCheckerExtra, StatusToStringNamesCodeNumberAndMessage) {
  EXPECT_EQ(Status().ToString(), "OK(0)");
  EXPECT_EQ(Status(ErrorCode::BATCH_BUSY, "in flight").ToString(), "BATCH_BUSY(-812): in flight");
  EXPECT_EQ(Status(ErrorCode::RPC_TIMEOUT, "").ToString(), "RPC_TIMEOUT(-901)");
}

void PrintHookMarker(void* context) {
  std::fprintf(stderr, "assert hook ran with %s\n", static_cast<const char*>(context));
}

TEST(ContractCheckerDeath, AViolationAbortsWithTheLineAndRunsTheAssertHook) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto run = [] {
    static const char kContext[] = "context-17";
    SetAssertHook({&PrintHookMarker, const_cast<char*>(kContext)});
    auto t = std::make_unique<ScriptedTransport>();
    t->next_register = uint64_t{0};
    ContractChecker checker(std::move(t), /*abort_on_violation=*/true);
    (void)checker.RegisterMemory(0x1000, 64, Location::Host());
  };
  EXPECT_DEATH(run(),
               "transport 'scripted' broke its contract: RegisterMemory returned remote key "
               "0(.|\n)*TIDAL_ASSERT failed(.|\n)*ContractChecker: transport contract "
               "violated(.|\n)*assert hook ran with context-17");
}

}  // namespace
}  // namespace tidal
