// MasterService: the master's state machine served over RPC (see master.h).
#include "protocol.h"
#include "tidal/store/master.h"

namespace tidal::store {

MasterService::MasterService(Env& env, Messenger& messenger, MasterOptions options,
                             MasterJournal* journal)
    : env_(env),
      messenger_(messenger),
      state_(options),
      recovery_(journal != nullptr ? state_.Recover(journal, env.NowNs()) : Status()),
      server_(messenger, [this](std::string_view from, MsgType type,
                                std::string_view body) { return Handle(from, type, body); }),
      alive_(std::make_shared<bool>(true)) {}

MasterService::~MasterService() {
  *alive_ = false;
  if (sweep_ != 0) env_.CancelTimer(sweep_);
  messenger_.SetReceiver(nullptr);
}

void MasterService::Start() {
  if (sweep_ == 0) ArmSweep();
}

void MasterService::ArmSweep() {
  sweep_ = env_.ScheduleAfter(state_.options().sweep_interval_ns, [this, alive = alive_]() {
    if (!*alive) return;
    state_.Tick(env_.NowNs());
    ArmSweep();
  });
}

std::string MasterService::Handle(std::string_view from_view, MsgType type, std::string_view body) {
  const std::string from(from_view);
  const uint64_t now = env_.NowNs();
  switch (type) {
    case MsgType::kRegisterClient:
    case MsgType::kHeartbeat:
      return proto::Respond(Status(), proto::EncodeU64s(state_.Heartbeat(from, now)));
    case MsgType::kMountSegment: {
      proto::MountReq m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      Result<uint64_t> id = state_.Mount(from, m.segment, m.base, m.size, now);
      if (!id.ok()) return proto::Respond(id.status());
      return proto::Respond(Status(), proto::EncodeU64(*id));
    }
    case MsgType::kUnmountSegment: {
      uint64_t id = 0;
      if (Status s = proto::DecodeU64(body, &id); !s.ok()) return proto::Respond(s);
      Result<uint64_t> drain = state_.Unmount(from, id, now);
      if (!drain.ok()) return proto::Respond(drain.status());
      return proto::Respond(Status(), proto::EncodeU64(*drain));
    }
    case MsgType::kPutStart: {
      proto::PutStartReq m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      auto r = state_.PutStart(from, m.key, m.size, m.config, now);
      if (!r.ok()) return proto::Respond(r.status());
      return proto::Respond(Status(), proto::Encode(proto::PutStartResp{r->first, r->second}));
    }
    case MsgType::kPutEnd:
    case MsgType::kPutRevoke: {
      proto::KeyGen m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      return proto::Respond(type == MsgType::kPutEnd
                                ? state_.PutEnd(from, m.key, m.generation, now)
                                : state_.PutRevoke(from, m.key, m.generation, now));
    }
    case MsgType::kPutReserve: {
      proto::PutReserveReq m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      auto r = state_.Reserve(from, m.size, m.config, m.count, m.release, now);
      if (!r.ok()) return proto::Respond(r.status());
      proto::PutReserveResp resp{state_.reservation_valid_ns(), {}};
      for (MasterState::Reserved& x : *r) {
        resp.reservations.push_back({x.id, std::move(x.replicas)});
      }
      return proto::Respond(Status(), proto::Encode(resp));
    }
    case MsgType::kPutCommit: {
      proto::PutCommitReq m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      Result<uint64_t> g = state_.PutCommit(from, m.key, m.reservation, m.size, m.config, now);
      if (!g.ok()) return proto::Respond(g.status());
      return proto::Respond(Status(), proto::EncodeU64(*g));
    }
    case MsgType::kPutRelease: {
      std::vector<uint64_t> ids;
      if (Status s = proto::DecodeU64s(body, &ids); !s.ok()) return proto::Respond(s);
      state_.ReleaseReservations(from, ids, now);
      return proto::Respond(Status());
    }
    case MsgType::kGetReplicaList: {
      proto::KeyGen m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      auto r = state_.GetReplicaList(m.key, m.generation, now);
      if (!r.ok()) return proto::Respond(r.status());
      proto::ReplicaListResp resp{r->first.size, r->first.generation, state_.options().lease_ttl_ns,
                                  r->second};
      return proto::Respond(Status(), proto::Encode(resp));
    }
    case MsgType::kStat: {
      std::string key;
      if (Status s = proto::DecodeKey(body, &key); !s.ok()) return proto::Respond(s);
      Result<ObjectInfo> info = state_.Stat(key, now);
      if (!info.ok()) return proto::Respond(info.status());
      return proto::Respond(Status(), proto::EncodeInfo(*info));
    }
    case MsgType::kBatchExists: {
      std::vector<std::string> keys;
      if (Status s = proto::DecodeKeys(body, &keys); !s.ok()) return proto::Respond(s);
      std::vector<ErrorCode> codes;
      for (const auto& k : keys) codes.push_back(state_.Stat(k, now).code());
      return proto::Respond(Status(), proto::EncodeCodes(codes));
    }
    case MsgType::kRemove: {
      proto::RemoveReq m;
      if (Status s = proto::Decode(body, &m); !s.ok()) return proto::Respond(s);
      return proto::Respond(state_.Remove(m.key, m.force, now));
    }
  }
  return proto::Respond(Status(ErrorCode::INVALID_PARAMS, "unknown request type"));
}

}  // namespace tidal::store
