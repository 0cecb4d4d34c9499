#include "tidal/contract_checker.h"

#include <cstdio>

namespace tidal {

ContractChecker::ContractChecker(std::unique_ptr<Transport> inner, bool abort_on_violation)
    : inner_(std::move(inner)), abort_on_violation_(abort_on_violation) {
  TIDAL_ASSERT(inner_ != nullptr);
}

void ContractChecker::Violation(std::string what) {
  std::string line = "transport '" + std::string(inner_->Name()) + "' broke its contract: " + what;
  violations_.push_back(line);
  if (abort_on_violation_) {
    std::fprintf(stderr, "%s\n", line.c_str());
    TIDAL_ASSERT_MSG(false, "ContractChecker: transport contract violated");
  }
}

Status ContractChecker::Install(const TransportInstall& install) {
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and an on_ready callback");
  }
  return inner_->Install(install);
}

Result<uint64_t> ContractChecker::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  Result<uint64_t> r = inner_->RegisterMemory(addr, length, loc);
  if (r.ok() && *r == 0) Violation("RegisterMemory returned remote key 0");
  if (!r.ok() && r.code() != ErrorCode::REGISTRATION_FAILED &&
      r.code() != ErrorCode::UNSUPPORTED) {
    Violation("RegisterMemory failed with " + r.status().ToString() +
              " (expected REGISTRATION_FAILED or UNSUPPORTED)");
  }
  return r;
}

Status ContractChecker::UnregisterMemory(uint64_t addr, uint64_t length) {
  return inner_->UnregisterMemory(addr, length);
}

void ContractChecker::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  if (accepted.size() != tasks.size()) {
    Violation("Submit called with mismatched spans");
    return;
  }
  for (const TransportTask& t : tasks) {
    if (outstanding_.count(t.task_id) != 0) {
      Violation("task id " + std::to_string(t.task_id) + " submitted while outstanding");
    }
  }
  inner_->Submit(tasks, accepted);
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (accepted[i].ok()) outstanding_.emplace(tasks[i].task_id, tasks[i]);
  }
}

bool ContractChecker::TryCopyNow(const TransportTask& task) {
  const bool copied = inner_->TryCopyNow(task);
  if (copied && (task.kind == TransportTask::Kind::kProbe || task.length == 0)) {
    Violation(std::string("TryCopyNow reported ") +
              (task.length == 0 ? "an empty task" : "a probe") + " copied");
  }
  return copied;
}

size_t ContractChecker::PollCompletions(std::span<TransportCompletion> out) {
  const size_t n = inner_->PollCompletions(out);
  if (n > out.size()) {
    Violation("PollCompletions reported more completions than it had room for");
    return 0;
  }
  for (size_t i = 0; i < n; ++i) {
    const TransportCompletion& c = out[i];
    auto it = outstanding_.find(c.task_id);
    if (it == outstanding_.end()) {
      Violation("completion for task " + std::to_string(c.task_id) +
                " that is not outstanding (duplicate, rejected or never submitted)");
      continue;
    }
    const TransportTask t = it->second;
    outstanding_.erase(it);
    const std::string id = "task " + std::to_string(c.task_id) + ": ";
    if (c.bytes_transferred > t.length) {
      Violation(id + "bytes_transferred " + std::to_string(c.bytes_transferred) +
                " exceeds length " + std::to_string(t.length));
    }
    if (c.code == ErrorCode::OK && c.bytes_transferred != t.length) {
      Violation(id + "OK with " + std::to_string(c.bytes_transferred) + " of " +
                std::to_string(t.length) + " bytes");
    }
    if (c.code == ErrorCode::TRANSFER_INCOMPLETE && c.bytes_transferred >= t.length &&
        t.length > 0) {
      Violation(id + "TRANSFER_INCOMPLETE but every byte moved");
    }
    if ((c.code == ErrorCode::ADDRESS_NOT_REGISTERED ||
         c.code == ErrorCode::REMOTE_ACCESS_DENIED) &&
        c.bytes_transferred != 0) {
      Violation(id + std::string(ErrorCodeName(c.code)) + " yet bytes moved");
    }
  }
  return n;
}

Status ContractChecker::Cancel(uint64_t task_id) {
  const bool known = outstanding_.count(task_id) != 0;
  Status s = inner_->Cancel(task_id);
  if (!known && s.code() != ErrorCode::INVALID_PARAMS) {
    Violation("Cancel of unknown task " + std::to_string(task_id) + " returned " + s.ToString());
  }
  if (known && !s.ok()) {
    Violation("Cancel of outstanding task " + std::to_string(task_id) + " failed: " +
              s.ToString());
  }
  return s;
}

}  // namespace tidal
