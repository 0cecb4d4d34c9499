#include "transport_clauses.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>

namespace tidal::testing {

namespace {

using Kind = TransportTask::Kind;

// One run of a check: a rig, the completions and notifications polled from every node
// (each handed to an optional hook at the instant it is polled, so a check can look at
// memory exactly when a completion is reported), and the violations found.
class Harness {
 public:
  Harness(TransportRig& rig, uint64_t seed) : rig_(rig), seed_(seed) {
    completions_.resize(rig.size());
    notes_.resize(rig.size());
  }

  TransportRig& rig() { return rig_; }
  Transport& t(size_t node) { return rig_.transport(node); }
  std::vector<std::string>& violations() { return violations_; }

  void Expect(bool ok, const std::string& what) {
    if (!ok) violations_.push_back("seed " + std::to_string(seed_) + ": " + what);
  }

  // Registers a region, or records why not and returns an empty one.
  RigRegion Region(size_t node, size_t size, uint8_t fill) {
    Result<RigRegion> r = rig_.Register(node, size);
    if (!r.ok()) {
      Expect(false, "RegisterMemory on node " + std::to_string(node) + " failed: " +
                        r.status().ToString());
      return {};
    }
    if (fill != 0) r->Fill(fill);
    return *r;
  }
  PeerId Connect(size_t from, size_t to) {
    Result<PeerId> p = rig_.Connect(from, to);
    Expect(p.ok(), "Connect " + std::to_string(from) + "->" + std::to_string(to) + " failed: " +
                       p.status().ToString());
    return p.ok() ? *p : PeerId{0};
  }

  // Submits and returns one Status per task. A slot the transport leaves unset reads as
  // a violation of "one Status per task".
  std::vector<Status> Submit(size_t node, const std::vector<TransportTask>& tasks) {
    const Status unset(ErrorCode::INTERNAL_ERROR, "conformance: status left unset");
    std::vector<Status> st(tasks.size(), unset);
    t(node).Submit(tasks, st);
    for (size_t i = 0; i < tasks.size(); ++i) {
      Expect(st[i].message() != unset.message(),
             "Submit left the status of task " + std::to_string(tasks[i].task_id) + " unset");
    }
    return st;
  }

  void PollAll() {
    for (size_t n = 0; n < rig_.size(); ++n) {
      TransportCompletion buf[16];
      for (;;) {
        const size_t k = t(n).PollCompletions(buf);
        for (size_t i = 0; i < k; ++i) {
          completions_[n].push_back(buf[i]);
          if (on_completion) on_completion(n, buf[i]);
        }
        if (k < std::size(buf)) break;
      }
      for (;;) {
        // Each batch is looked at as soon as it is polled, before the next poll.
        std::vector<Notification> notes;
        if (t(n).PollNotifies(notes, 16) == 0) break;
        for (Notification& note : notes) {
          if (on_notify) on_notify(n, note);
          notes_[n].push_back(std::move(note));
        }
      }
    }
  }
  // Drives the rig until every id has completed on `node` (false if that never happens).
  bool Wait(size_t node, const std::vector<uint64_t>& ids) {
    return rig_.RunUntil([&] {
      PollAll();
      for (uint64_t id : ids) {
        if (Count(node, id) == 0) return false;
      }
      return true;
    });
  }
  bool WaitFor(const std::function<bool()>& done) {
    return rig_.RunUntil([&] {
      PollAll();
      return done();
    });
  }
  void Settle() {
    rig_.Settle();
    PollAll();
  }

  size_t Count(size_t node, uint64_t id) const {
    size_t k = 0;
    for (const TransportCompletion& c : completions_[node]) k += c.task_id == id;
    return k;
  }
  // The one completion of `id` (recording a violation unless there is exactly one).
  TransportCompletion Only(size_t node, uint64_t id) {
    const size_t k = Count(node, id);
    Expect(k == 1, "task " + std::to_string(id) + " completed " + std::to_string(k) +
                       " times (want exactly once)");
    for (const TransportCompletion& c : completions_[node]) {
      if (c.task_id == id) return c;
    }
    return TransportCompletion{id, ErrorCode::INTERNAL_ERROR, 0};
  }
  const std::vector<TransportCompletion>& completions(size_t node) const {
    return completions_[node];
  }
  const std::vector<Notification>& notes(size_t node) const { return notes_[node]; }

  std::function<void(size_t, const TransportCompletion&)> on_completion;
  std::function<void(size_t, const Notification&)> on_notify;

 private:
  TransportRig& rig_;
  uint64_t seed_;
  std::vector<std::vector<TransportCompletion>> completions_;
  std::vector<std::vector<Notification>> notes_;
  std::vector<std::string> violations_;
};

TransportTask Task(uint64_t id, Kind kind, PeerId peer, uint64_t local, uint64_t remote,
                   uint64_t length, uint64_t rkey) {
  return TransportTask{id, kind, peer, local, remote, length, rkey};
}

std::string Code(ErrorCode c) { return std::string(ErrorCodeName(c)); }

bool Same(const uint8_t* a, const uint8_t* b, size_t n) { return std::memcmp(a, b, n) == 0; }

// A task refused for `want`: either rejected at Submit with that code, or accepted and
// completed exactly once with it and zero bytes. Anything else is a violation.
void ExpectRefused(Harness& h, size_t node, const TransportTask& task, const Status& submitted,
                   ErrorCode want, const std::string& what) {
  const std::string id = what + " (task " + std::to_string(task.task_id) + ")";
  if (!submitted.ok()) {
    h.Expect(submitted.code() == want,
             id + " rejected with " + submitted.ToString() + ", want " + Code(want));
    h.Expect(h.Count(node, task.task_id) == 0, id + " was rejected yet completed");
    return;
  }
  const TransportCompletion c = h.Only(node, task.task_id);
  h.Expect(c.code == want && c.bytes_transferred == 0,
           id + " completed " + Code(c.code) + " with " + std::to_string(c.bytes_transferred) +
               " bytes, want " + Code(want) + " with 0");
}

// ---- the clauses -------------------------------------------------------------------

void RejectedTaskProducesNoCompletionAndMovesNoBytes(Harness& h) {
  RigRegion a = h.Region(0, 4096, 9), b = h.Region(1, 4096, 1), c = h.Region(0, 4096, 0);
  const PeerId p = h.Connect(0, 1);
  const auto a0 = a.Snapshot(), b0 = b.Snapshot();
  std::vector<TransportTask> tasks = {
      Task(1, Kind::kWrite, p + 100, a.addr(), b.addr(), 64, b.rkey),        // unknown peer
      Task(2, Kind::kWrite, p, a.addr(), b.addr(), 0, b.rkey),               // zero length
      Task(3, Kind::kWrite, p, a.addr() + 4000, b.addr(), 200, b.rkey),      // local straddles
      Task(4, Kind::kRead, p, c.addr(), b.addr(), 4096, b.rkey),             // good
      Task(4, Kind::kWrite, p, a.addr(), b.addr(), 64, b.rkey),              // duplicate id
  };
  std::vector<Status> st = h.Submit(0, tasks);
  h.Expect(st[3].ok(), "a valid READ was rejected: " + st[3].ToString());
  h.Wait(0, {4});
  h.Settle();
  size_t rejected = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (st[i].ok() || i == 4) continue;  // the duplicate shares its id with task 4
    ++rejected;
    h.Expect(h.Count(0, tasks[i].task_id) == 0,
             "task " + std::to_string(tasks[i].task_id) + " was rejected (" + st[i].ToString() +
                 ") yet completed");
  }
  if (!st[4].ok()) ++rejected;
  h.Expect(h.Count(0, 4) == (st[4].ok() ? 2u : 1u),
           "the valid READ (and its duplicate id) completed " + std::to_string(h.Count(0, 4)) +
               " times");
  h.Expect(rejected > 0, "no invalid task was rejected at Submit: the clause was not exercised");
  h.Expect(b.Unchanged(b0), "rejected WRITEs changed the target region or its guards");
  h.Expect(a.Unchanged(a0), "the source region changed");
  h.Expect(Same(c.data, b.data, 4096), "the valid READ did not bring the target's bytes");
}

void EveryAcceptedTaskCompletesExactlyOnce(Harness& h) {
  RigRegion a = h.Region(0, 1 << 20, 3), b = h.Region(1, 1 << 20, 4), c = h.Region(2, 1 << 20, 5);
  const PeerId pb = h.Connect(0, 1), pc = h.Connect(0, 2);
  std::vector<TransportTask> tasks;
  uint64_t id = 10;
  for (uint64_t len : {uint64_t{1}, uint64_t{100}, uint64_t{4096}, uint64_t{65536},
                       uint64_t{300'000}}) {
    const uint64_t off = (id % 3) * 4096;
    tasks.push_back(Task(id++, Kind::kWrite, pb, a.addr() + off, b.addr() + off, len, b.rkey));
    tasks.push_back(Task(id++, Kind::kRead, pc, a.addr() + 512 * 1024 + off,
                         c.addr() + off, len, c.rkey));
  }
  tasks.push_back(Task(id++, Kind::kProbe, pb, 0, 0, 0, 0));
  tasks.push_back(Task(id++, Kind::kProbe, pc, 0, 0, 0, 0));
  std::vector<Status> st = h.Submit(0, tasks);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < tasks.size(); ++i) {
    h.Expect(st[i].ok(), "valid task " + std::to_string(tasks[i].task_id) + " rejected: " +
                             st[i].ToString());
    if (st[i].ok()) ids.push_back(tasks[i].task_id);
  }
  h.Expect(h.Wait(0, ids), "not every accepted task completed");
  h.Settle();
  for (uint64_t i : ids) {
    const TransportCompletion done = h.Only(0, i);
    h.Expect(done.code == ErrorCode::OK,
             "task " + std::to_string(i) + " completed " + Code(done.code));
  }
  for (const TransportCompletion& done : h.completions(0)) {
    h.Expect(std::find(ids.begin(), ids.end(), done.task_id) != ids.end(),
             "completion for task " + std::to_string(done.task_id) + " never accepted");
  }
}

void CancelCompletesTheTaskExactlyOnce(Harness& h) {
  const size_t n = 1 << 20;
  RigRegion a = h.Region(0, n, 7), b = h.Region(1, n, 0);
  const PeerId p = h.Connect(0, 1);
  const auto b0 = b.Snapshot();
  // Canceled at once (still in flight), canceled after it finished but before its
  // completion was polled, and one left alone.
  std::vector<TransportTask> tasks = {
      Task(1, Kind::kWrite, p, a.addr(), b.addr(), n / 2, b.rkey),
      Task(2, Kind::kWrite, p, a.addr() + n / 2, b.addr() + n / 2, n / 4, b.rkey),
      Task(3, Kind::kRead, p, a.addr() + 3 * n / 4, b.addr() + 3 * n / 4, 1024, b.rkey),
  };
  std::vector<Status> st = h.Submit(0, tasks);
  for (const Status& s : st) h.Expect(s.ok(), "valid task rejected: " + s.ToString());
  Status c1 = h.t(0).Cancel(1);
  h.Expect(c1.ok(), "Cancel of an outstanding task failed: " + c1.ToString());
  // Task 2 finishes before its Cancel: run the rig dry without polling node 0, so its
  // completion waits, unpolled, in the transport.
  h.rig().Settle();
  Status c2 = h.t(0).Cancel(2);
  h.Expect(c2.ok(), "Cancel of a finished, unpolled task failed: " + c2.ToString());
  h.Wait(0, {1, 2, 3});
  h.Settle();
  for (uint64_t id : {uint64_t{1}, uint64_t{2}}) {
    const TransportTask& t = tasks[id - 1];
    const TransportCompletion c = h.Only(0, id);
    const uint64_t off = t.remote_addr - b.addr();
    if (c.code == ErrorCode::OK) {
      h.Expect(c.bytes_transferred == t.length && Same(a.data + off, b.data + off, t.length),
               "canceled task " + std::to_string(id) + " reported OK without all its bytes");
    } else {
      h.Expect(c.code == ErrorCode::TRANSFER_CANCELED,
               "canceled task " + std::to_string(id) + " completed " + Code(c.code) +
                   ", want TRANSFER_CANCELED or OK");
      h.Expect(c.bytes_transferred <= t.length, "canceled task reports more than its length");
    }
  }
  const TransportCompletion c3 = h.Only(0, 3);
  h.Expect(c3.code == ErrorCode::OK, "the task left alone completed " + Code(c3.code));
  // Nothing outside the tasks' ranges moved (the guards are compared).
  h.Expect(std::equal(b0.begin(), b0.begin() + RigRegion::kGuardBytes, b.base) &&
               std::equal(b0.end() - RigRegion::kGuardBytes, b0.end(), b.data + n),
           "a canceled write touched the target's guard bands");
}

void OkMeansEveryByteIsVisibleAtTheTarget(Harness& h) {
  const size_t n = 2 << 20;
  RigRegion a = h.Region(0, n, 11), b = h.Region(1, n, 200);
  const PeerId p = h.Connect(0, 1);
  std::vector<TransportTask> tasks;
  uint64_t id = 1, off = 0;
  for (uint64_t len : {uint64_t{1}, uint64_t{7}, uint64_t{4096}, uint64_t{65539},
                       uint64_t{1 << 19}}) {
    // A WRITE of [off, off+len) of a into b, and a READ of another part of b into a.
    tasks.push_back(Task(id++, Kind::kWrite, p, a.addr() + off, b.addr() + off, len, b.rkey));
    const uint64_t roff = n / 2 + off;
    tasks.push_back(Task(id++, Kind::kRead, p, a.addr() + roff, b.addr() + roff, len, b.rkey));
    off += len + 13;
  }
  const auto a0 = a.Snapshot(), b0 = b.Snapshot();
  // Look at the bytes at the instant each completion is polled: that is when OK promises
  // them.
  h.on_completion = [&](size_t node, const TransportCompletion& c) {
    if (node != 0 || c.task_id == 0 || c.task_id > tasks.size()) return;
    const TransportTask& t = tasks[c.task_id - 1];
    const uint64_t o = t.local_addr - a.addr();
    if (c.code != ErrorCode::OK) {
      h.Expect(false, "task " + std::to_string(c.task_id) + " completed " + Code(c.code));
      return;
    }
    h.Expect(c.bytes_transferred == t.length,
             "task " + std::to_string(c.task_id) + " OK with " +
                 std::to_string(c.bytes_transferred) + " of " + std::to_string(t.length));
    h.Expect(Same(a.data + o, b.data + o, t.length),
             std::string(t.kind == Kind::kWrite ? "WRITE " : "READ ") +
                 std::to_string(c.task_id) + " reported OK before all its bytes were there");
  };
  std::vector<Status> st = h.Submit(0, tasks);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < tasks.size(); ++i) {
    h.Expect(st[i].ok(), "valid task rejected: " + st[i].ToString());
    ids.push_back(tasks[i].task_id);
  }
  h.Expect(h.Wait(0, ids), "not every task completed");
  h.Settle();
  h.on_completion = nullptr;
  // Outside the tasks' ranges nothing changed, on either side.
  std::vector<uint8_t> want_a = a0, want_b = b0;
  for (const TransportTask& t : tasks) {
    const uint64_t o = RigRegion::kGuardBytes + (t.local_addr - a.addr());
    if (t.kind == Kind::kWrite) {
      std::copy(a0.begin() + o, a0.begin() + o + t.length, want_b.begin() + o);
    } else {
      std::copy(b0.begin() + o, b0.begin() + o + t.length, want_a.begin() + o);
    }
  }
  h.Expect(a.Unchanged(want_a), "the initiator's memory is not exactly what the READs brought");
  h.Expect(b.Unchanged(want_b), "the target's memory is not exactly what the WRITEs sent");
}

void ShortTransferIsIncompleteWithTheTrueCount(Harness& h) {
  // The rig's fault script makes the first WRITE 100 bytes short and the first READ
  // 4000 bytes short.
  RigRegion a = h.Region(0, 4096, 7), b = h.Region(1, 4096, 0);
  const PeerId p = h.Connect(0, 1);
  std::vector<Status> st = h.Submit(0, {Task(1, Kind::kWrite, p, a.addr(), b.addr(), 4096, b.rkey)});
  h.Expect(st[0].ok(), "valid WRITE rejected: " + st[0].ToString());
  h.Wait(0, {1});
  TransportCompletion w = h.Only(0, 1);
  h.Expect(w.code == ErrorCode::TRANSFER_INCOMPLETE && w.bytes_transferred == 3996,
           "short WRITE completed " + Code(w.code) + " with " +
               std::to_string(w.bytes_transferred) + " bytes, want TRANSFER_INCOMPLETE with 3996");
  const uint64_t moved = std::min<uint64_t>(w.bytes_transferred, 4096);
  h.Expect(Same(a.data, b.data, moved), "the counted prefix of the short WRITE did not arrive");
  bool tail_zero = true;
  for (size_t i = moved; i < 4096; ++i) tail_zero = tail_zero && b.data[i] == 0;
  h.Expect(tail_zero, "bytes past the reported count of the short WRITE changed");
  b.Fill(99);
  std::memset(a.data, 0, 4096);
  st = h.Submit(0, {Task(2, Kind::kRead, p, a.addr(), b.addr(), 4096, b.rkey)});
  h.Expect(st[0].ok(), "valid READ rejected: " + st[0].ToString());
  h.Wait(0, {2});
  h.Settle();
  TransportCompletion r = h.Only(0, 2);
  h.Expect(r.code == ErrorCode::TRANSFER_INCOMPLETE && r.bytes_transferred == 96,
           "short READ completed " + Code(r.code) + " with " +
               std::to_string(r.bytes_transferred) + " bytes, want TRANSFER_INCOMPLETE with 96");
  h.Expect(Same(a.data, b.data, std::min<uint64_t>(r.bytes_transferred, 4096)),
           "the counted prefix of the short READ did not arrive");
}

void LocalRangeOutsideRegisteredMemoryIsNotRegistered(Harness& h) {
  RigRegion a = h.Region(0, 4096, 9), b = h.Region(1, 4096, 1);
  const PeerId p = h.Connect(0, 1);
  const auto a0 = a.Snapshot(), b0 = b.Snapshot();
  std::vector<TransportTask> tasks = {
      Task(1, Kind::kWrite, p, a.addr() + 4000, b.addr(), 200, b.rkey),   // straddles the end
      Task(2, Kind::kWrite, p, a.addr() - 16, b.addr() + 1024, 64, b.rkey),  // the front
      Task(3, Kind::kRead, p, a.addr() - 200, b.addr(), 64, b.rkey),      // wholly outside
      Task(4, Kind::kRead, p, a.addr() + 4090, b.addr() + 2048, 100, b.rkey),
  };
  std::vector<Status> st = h.Submit(0, tasks);
  h.Settle();
  for (size_t i = 0; i < tasks.size(); ++i) {
    ExpectRefused(h, 0, tasks[i], st[i], ErrorCode::ADDRESS_NOT_REGISTERED,
                  "a local range outside registered memory");
  }
  h.Expect(a.Unchanged(a0), "a refused READ changed the initiator's memory");
  h.Expect(b.Unchanged(b0), "a refused WRITE changed the target's memory");
}

void RemoteRangeOutsideTheWindowIsDeniedAtTheTarget(Harness& h) {
  // The tasks go straight to the transport with the region's right key, so only the
  // target's own window check stands between them and the guard bands.
  RigRegion a = h.Region(0, 4096, 9), b = h.Region(1, 4096, 1);
  const PeerId p = h.Connect(0, 1);
  const auto a0 = a.Snapshot(), b0 = b.Snapshot();
  std::vector<TransportTask> tasks = {
      Task(1, Kind::kWrite, p, a.addr(), b.addr() + 4000, 200, b.rkey),   // runs past the end
      Task(2, Kind::kWrite, p, a.addr(), b.addr() - 64, 128, b.rkey),     // starts before it
      Task(3, Kind::kRead, p, a.addr(), b.addr() + 4050, 100, b.rkey),    // READ past the end
      Task(4, Kind::kWrite, p, a.addr(), b.addr() + 4096 + 16, 32, b.rkey),  // wholly outside
      Task(5, Kind::kRead, p, a.addr() + 100, b.addr() - 1, 2, b.rkey),
  };
  std::vector<Status> st = h.Submit(0, tasks);
  h.Settle();
  for (size_t i = 0; i < tasks.size(); ++i) {
    ExpectRefused(h, 0, tasks[i], st[i], ErrorCode::REMOTE_ACCESS_DENIED,
                  "a remote range outside the exported window");
  }
  h.Expect(b.Unchanged(b0), "an out-of-window WRITE changed the target or its guard bands");
  h.Expect(a.Unchanged(a0), "an out-of-window READ changed the initiator's memory");
}

void WrongRemoteKeyIsDeniedAtTheTarget(Harness& h) {
  RigRegion a = h.Region(0, 4096, 9), b = h.Region(1, 4096, 1), other = h.Region(1, 4096, 2);
  RigRegion far = h.Region(2, 4096, 3);
  const PeerId p = h.Connect(0, 1);
  const auto a0 = a.Snapshot(), b0 = b.Snapshot();
  std::vector<TransportTask> tasks = {
      Task(1, Kind::kWrite, p, a.addr(), b.addr(), 4096, b.rkey ^ 0x5a5a5a5a00000000ULL),
      Task(2, Kind::kWrite, p, a.addr(), b.addr(), 64, 0),
      Task(3, Kind::kWrite, p, a.addr(), b.addr(), 64, other.rkey),  // the node's other region
      Task(4, Kind::kWrite, p, a.addr(), b.addr(), 64, far.rkey),    // another node's key
      Task(5, Kind::kRead, p, a.addr(), b.addr(), 4096, b.rkey + 2),
  };
  std::vector<Status> st = h.Submit(0, tasks);
  h.Settle();
  for (size_t i = 0; i < tasks.size(); ++i) {
    ExpectRefused(h, 0, tasks[i], st[i], ErrorCode::REMOTE_ACCESS_DENIED,
                  "an access with a wrong remote key");
  }
  h.Expect(b.Unchanged(b0), "a WRITE with a wrong key changed the target");
  h.Expect(a.Unchanged(a0), "a READ with a wrong key changed the initiator");
}

void NotificationFollowsTheDataOfCompletedWrites(Harness& h) {
  if (!h.t(0).Capabilities().notifications) return;
  const size_t n = 1 << 20;
  RigRegion a = h.Region(0, n, 21), b = h.Region(1, n, 0), c = h.Region(2, n, 0);
  const PeerId pb = h.Connect(0, 1), pc = h.Connect(0, 2);
  struct Sent {
    size_t node;
    uint64_t off, len;
  };
  std::map<std::string, Sent> sent;  // payload -> the write it follows
  std::map<std::string, size_t> seen;
  const RigRegion* target[3] = {nullptr, &b, &c};
  h.on_notify = [&](size_t node, const Notification& note) {
    ++seen[note.payload];
    h.Expect(note.source == h.rig().Descriptor(0).name,
             "notification from '" + note.source + "', want '" + h.rig().Descriptor(0).name + "'");
    auto it = sent.find(note.payload);
    if (it == sent.end() || it->second.node != node) {
      h.Expect(false, "unexpected notification '" + note.payload + "' on node " +
                          std::to_string(node));
      return;
    }
    const Sent& s = it->second;
    h.Expect(Same(a.data + s.off, target[node]->data + s.off, s.len),
             "notification '" + note.payload + "' arrived before the data of its write");
  };
  // Rounds of: a write to each peer, wait for it, notify at once; plus a write left in
  // flight (submitted, not waited for), which the next notification may overtake.
  uint64_t id = 1;
  for (uint64_t round = 0; round < 4; ++round) {
    for (size_t node : {size_t{1}, size_t{2}}) {
      const PeerId p = node == 1 ? pb : pc;
      const uint64_t rkey = node == 1 ? b.rkey : c.rkey;
      const uint64_t off = round * (n / 8), len = n / 16 + round * 1000;
      const uint64_t done_id = id++;
      const uint64_t base = target[node]->addr();
      std::vector<Status> st = h.Submit(
          0, {Task(done_id, Kind::kWrite, p, a.addr() + off, base + off, len, rkey)});
      h.Expect(st[0].ok(), "valid WRITE rejected: " + st[0].ToString());
      h.Wait(0, {done_id});
      const TransportCompletion w = h.Only(0, done_id);
      if (w.code != ErrorCode::OK) {
        h.Expect(false, "WRITE completed " + Code(w.code));
        continue;
      }
      const std::string payload = "w" + std::to_string(done_id);
      sent[payload] = Sent{node, off, len};
      Status s = h.t(0).SendNotify(p, payload);
      h.Expect(s.ok(), "SendNotify failed: " + s.ToString());
      const uint64_t spare = n / 2 + round * (n / 16);
      h.Submit(0, {Task(id++, Kind::kWrite, p, a.addr() + spare, base + spare, n / 16, rkey)});
    }
  }
  h.Settle();
  for (const auto& [payload, s] : sent) {
    h.Expect(seen[payload] == 1, "notification '" + payload + "' delivered " +
                                     std::to_string(seen[payload]) + " times (want once)");
  }
}

void UnregisteredRangeIsNeverTouchedAgain(Harness& h) {
  const size_t n = 1 << 20;
  RigRegion a = h.Region(0, 4096, 9), b = h.Region(1, 4096, 1), d = h.Region(1, n, 2);
  RigRegion e = h.Region(0, n, 0), f = h.Region(0, n, 5);
  const PeerId p = h.Connect(0, 1);
  // The target unregisters b; a peer still holding its key writes and reads there.
  Status s = h.rig().Unregister(1, b);
  h.Expect(s.ok(), "UnregisterMemory of an idle region failed: " + s.ToString());
  const auto b0 = b.Snapshot();
  std::vector<TransportTask> remote = {
      Task(1, Kind::kWrite, p, a.addr(), b.addr(), 4096, b.rkey),
      Task(2, Kind::kRead, p, e.addr(), b.addr(), 4096, b.rkey),
  };
  std::vector<Status> st = h.Submit(0, remote);
  h.Settle();
  for (size_t i = 0; i < remote.size(); ++i) {
    ExpectRefused(h, 0, remote[i], st[i], ErrorCode::REMOTE_ACCESS_DENIED,
                  "an access to a region the target unregistered");
  }
  h.Expect(b.Unchanged(b0), "memory the target unregistered was written");
  // The initiator unregisters a, then names it as the local range.
  s = h.rig().Unregister(0, a);
  h.Expect(s.ok(), "UnregisterMemory of an idle region failed: " + s.ToString());
  const auto a0 = a.Snapshot(), d0 = d.Snapshot();
  std::vector<TransportTask> local = {
      Task(3, Kind::kRead, p, a.addr(), d.addr(), 4096, d.rkey),
      Task(4, Kind::kWrite, p, a.addr(), d.addr(), 4096, d.rkey),
  };
  st = h.Submit(0, local);
  h.Settle();
  for (size_t i = 0; i < local.size(); ++i) {
    ExpectRefused(h, 0, local[i], st[i], ErrorCode::ADDRESS_NOT_REGISTERED,
                  "a task on a local range this node unregistered");
  }
  h.Expect(a.Unchanged(a0), "memory this node unregistered was written");
  h.Expect(d.Unchanged(d0), "a task on an unregistered local range moved bytes");
  // Unregistering while a task is in flight: the transport may refuse (then the task
  // runs normally) or say OK, and then the range must stay exactly as it was.
  st = h.Submit(0, {Task(5, Kind::kRead, p, e.addr(), d.addr(), n, d.rkey),
                    Task(6, Kind::kWrite, p, f.addr(), d.addr(), n, d.rkey)});
  h.Expect(st[0].ok() && st[1].ok(), "valid tasks rejected");
  s = h.t(0).UnregisterMemory(e.addr(), e.size);
  const auto e0 = e.Snapshot();
  Status s2 = h.t(1).UnregisterMemory(d.addr(), d.size);
  const auto d1 = d.Snapshot();
  h.Settle();
  if (s.ok()) h.Expect(e.Unchanged(e0), "a READ landed in a range unregistered while in flight");
  if (s2.ok()) h.Expect(d.Unchanged(d1), "a WRITE landed in a target range unregistered while in flight");
  for (uint64_t id : {uint64_t{5}, uint64_t{6}}) h.Only(0, id);
}

void ConnectTwiceReturnsOnePeerId(Harness& h) {
  RigRegion a = h.Region(0, 4096, 6), b = h.Region(1, 4096, 0);
  const PeerId p1 = h.Connect(0, 1), p2 = h.Connect(0, 1), pc = h.Connect(0, 2);
  h.Expect(p1 == p2, "Connect twice to one address gave PeerIds " + std::to_string(p1) + " and " +
                         std::to_string(p2));
  h.Expect(pc != p1, "two peers got the same PeerId");
  SegmentDescriptor nowhere = h.rig().Descriptor(1);
  nowhere.address = "no-such-address:" + nowhere.address;
  Result<PeerId> bad = h.t(0).Connect(nowhere);
  h.Expect(bad.code() == ErrorCode::SEGMENT_NOT_FOUND || bad.code() == ErrorCode::PEER_UNREACHABLE,
           "Connect to an address that names nothing returned " + bad.status().ToString());
  // The second id reaches the same node.
  std::vector<Status> st = h.Submit(0, {Task(1, Kind::kWrite, p2, a.addr(), b.addr(), 4096, b.rkey)});
  h.Wait(0, {1});
  h.Settle();
  h.Expect(st[0].ok() && h.Only(0, 1).code == ErrorCode::OK && Same(a.data, b.data, 4096),
           "a WRITE through the second PeerId did not reach the peer");
}

void CancelOfUnknownIdIsInvalidParams(Harness& h) {
  RigRegion a = h.Region(0, 4096, 6), b = h.Region(1, 4096, 0);
  const PeerId p = h.Connect(0, 1);
  Status never = h.t(0).Cancel(424242);
  h.Expect(never.code() == ErrorCode::INVALID_PARAMS,
           "Cancel of a never-submitted id returned " + never.ToString());
  std::vector<Status> st = h.Submit(0, {Task(7, Kind::kWrite, p, a.addr(), b.addr(), 64, b.rkey),
                                        Task(8, Kind::kWrite, p + 50, a.addr(), b.addr(), 64, b.rkey)});
  h.Wait(0, {7});
  h.Settle();
  Status done = h.t(0).Cancel(7);
  h.Expect(done.code() == ErrorCode::INVALID_PARAMS,
           "Cancel of a completed and polled task returned " + done.ToString());
  if (!st[1].ok()) {
    Status rejected = h.t(0).Cancel(8);
    h.Expect(rejected.code() == ErrorCode::INVALID_PARAMS,
             "Cancel of a rejected task returned " + rejected.ToString());
  }
  h.Settle();
  h.Expect(h.Count(0, 7) == 1, "Cancel of a finished task produced another completion");
}

void ProbeAnswersForALivePeerOnly(Harness& h) {
  RigRegion a = h.Region(0, 4096, 6), b = h.Region(1, 4096, 1);
  const PeerId p = h.Connect(0, 1), pc = h.Connect(0, 2);
  const auto a0 = a.Snapshot(), b0 = b.Snapshot();
  std::vector<Status> st = h.Submit(0, {Task(1, Kind::kProbe, p, 0, 0, 0, 0)});
  h.Expect(st[0].ok(), "a probe of a live peer was rejected: " + st[0].ToString());
  h.Wait(0, {1});
  const TransportCompletion live = h.Only(0, 1);
  h.Expect(live.code == ErrorCode::OK && live.bytes_transferred == 0,
           "a probe of a live peer completed " + Code(live.code) + " with " +
               std::to_string(live.bytes_transferred) + " bytes");
  Status crashed = h.rig().Crash(2);
  if (crashed.ok()) {
    st = h.Submit(0, {Task(2, Kind::kProbe, pc, 0, 0, 0, 0)});
    h.Settle();
    ExpectRefused(h, 0, Task(2, Kind::kProbe, pc, 0, 0, 0, 0), st[0], ErrorCode::PEER_UNREACHABLE,
                  "a probe of a crashed peer");
  }
  h.Settle();
  h.Expect(a.Unchanged(a0) && b.Unchanged(b0), "a probe moved bytes");
}

struct ClauseSpec {
  Clause clause;
  std::string_view name;
  size_t nodes;
  std::string_view faults;  // needs simulator faults when non-empty
  void (*check)(Harness&);
};

const ClauseSpec kClauses[] = {
    {Clause::kRejectedTaskProducesNoCompletionAndMovesNoBytes,
     "RejectedTaskProducesNoCompletionAndMovesNoBytes", 2, "",
     &RejectedTaskProducesNoCompletionAndMovesNoBytes},
    {Clause::kEveryAcceptedTaskCompletesExactlyOnce, "EveryAcceptedTaskCompletesExactlyOnce", 3,
     "", &EveryAcceptedTaskCompletesExactlyOnce},
    {Clause::kCancelCompletesTheTaskExactlyOnce, "CancelCompletesTheTaskExactlyOnce", 2, "",
     &CancelCompletesTheTaskExactlyOnce},
    {Clause::kOkMeansEveryByteIsVisibleAtTheTarget, "OkMeansEveryByteIsVisibleAtTheTarget", 2,
     "", &OkMeansEveryByteIsVisibleAtTheTarget},
    {Clause::kShortTransferIsIncompleteWithTheTrueCount,
     "ShortTransferIsIncompleteWithTheTrueCount", 2,
     "short_write src=0 dst=1 nth=1 by=100\nshort_read src=0 dst=1 nth=1 by=4000\n",
     &ShortTransferIsIncompleteWithTheTrueCount},
    {Clause::kLocalRangeOutsideRegisteredMemoryIsNotRegistered,
     "LocalRangeOutsideRegisteredMemoryIsNotRegistered", 2, "",
     &LocalRangeOutsideRegisteredMemoryIsNotRegistered},
    {Clause::kRemoteRangeOutsideTheWindowIsDeniedAtTheTarget,
     "RemoteRangeOutsideTheWindowIsDeniedAtTheTarget", 2, "",
     &RemoteRangeOutsideTheWindowIsDeniedAtTheTarget},
    {Clause::kWrongRemoteKeyIsDeniedAtTheTarget, "WrongRemoteKeyIsDeniedAtTheTarget", 3, "",
     &WrongRemoteKeyIsDeniedAtTheTarget},
    {Clause::kNotificationFollowsTheDataOfCompletedWrites,
     "NotificationFollowsTheDataOfCompletedWrites", 3, "",
     &NotificationFollowsTheDataOfCompletedWrites},
    {Clause::kUnregisteredRangeIsNeverTouchedAgain, "UnregisteredRangeIsNeverTouchedAgain", 2, "",
     &UnregisteredRangeIsNeverTouchedAgain},
    {Clause::kConnectTwiceReturnsOnePeerId, "ConnectTwiceReturnsOnePeerId", 3, "",
     &ConnectTwiceReturnsOnePeerId},
    {Clause::kCancelOfUnknownIdIsInvalidParams, "CancelOfUnknownIdIsInvalidParams", 2, "",
     &CancelOfUnknownIdIsInvalidParams},
    {Clause::kProbeAnswersForALivePeerOnly, "ProbeAnswersForALivePeerOnly", 3, "",
     &ProbeAnswersForALivePeerOnly},
};

const ClauseSpec& Spec(Clause clause) {
  for (const ClauseSpec& s : kClauses) {
    if (s.clause == clause) return s;
  }
  TIDAL_ASSERT_MSG(false, "a clause without a check");
  return kClauses[0];
}

}  // namespace

std::string_view ClauseName(Clause clause) { return Spec(clause).name; }

std::vector<Clause> AllClauses() {
  std::vector<Clause> out;
  for (const ClauseSpec& s : kClauses) out.push_back(s.clause);
  return out;
}

ClauseResult CheckClause(Clause clause, const RigMaker& make, const std::vector<uint64_t>& seeds) {
  const ClauseSpec& spec = Spec(clause);
  ClauseResult result;
  for (uint64_t seed : seeds) {
    RigOptions o;
    o.nodes = spec.nodes;
    o.seed = seed;
    o.faults = std::string(spec.faults);
    Result<std::unique_ptr<TransportRig>> rig = make(std::move(o));
    if (!rig.ok()) {
      result.skipped = rig.status().ToString();
      return result;
    }
    Harness h(**rig, seed);
    spec.check(h);
    if (!h.violations().empty()) {
      result.violations.insert(result.violations.end(), h.violations().begin(),
                               h.violations().end());
      result.violations.push_back((*rig)->Banner());
    }
  }
  return result;
}

}  // namespace tidal::testing
