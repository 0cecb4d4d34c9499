// EtcdMetadataStore: etcd's v3 JSON gateway over libcurl, requests on a worker thread,
// the lease renewed by a keep-alive thread. See the header for the contract.
#include "tidal/backends/etcd/etcd_metadata_store.h"

#include <curl/curl.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <coroutine>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

namespace tidal::backends {

using json = nlohmann::json;

// ----------------------------------------------------------------------------------------
// Encoding helpers.

namespace etcd_detail {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) |
                       (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint32_t(uint8_t(bytes[i + 2]));
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text, std::string_view field) {
  auto bad = [&](const std::string& why) {
    return Status(ErrorCode::CORRUPT_INPUT,
                  "etcd reply: field '" + std::string(field) + "' is not base64: " + why);
  };
  if (text.size() % 4 != 0) return bad("length " + std::to_string(text.size()));
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int s[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        s[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return bad("data after padding");
      s[k] = Sextet(c);
      if (s[k] < 0) return bad("character " + std::to_string(int(uint8_t(c))));
    }
    const uint32_t v = (uint32_t(s[0]) << 18) | (uint32_t(s[1]) << 12) | (uint32_t(s[2]) << 6) |
                       uint32_t(s[3]);
    // Canonical: the bits a padded group leaves over are zero.
    if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0)) {
      return bad("non-zero padding bits");
    }
    out += char((v >> 16) & 0xff);
    if (pad < 2) out += char((v >> 8) & 0xff);
    if (pad < 1) out += char(v & 0xff);
  }
  return out;
}

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (uint8_t(end.back()) != 0xff) {
      end.back() = char(uint8_t(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

bool IsHostPort(std::string_view endpoint) {
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::string_view host = endpoint.substr(0, colon);
  const std::string_view port = endpoint.substr(colon + 1);
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == '[' || c == ']' || c == ':';
    if (!ok) return false;
  }
  if (port.empty() || port.size() > 5) return false;
  uint32_t p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  return ec == std::errc() && ptr == port.data() + port.size() && p >= 1 && p <= 65535;
}

}  // namespace etcd_detail

namespace {

using etcd_detail::Base64Decode;
using etcd_detail::Base64Encode;

constexpr int64_t kListPage = 512;  // keys per range request of a List

// An int64 field of a gateway reply: a JSON string of digits (the gateway's encoding of
// int64), tolerated as a number; absent means 0 (proto3 omits zero values).
Result<int64_t> IntField(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return v;
  }
  return Status(ErrorCode::CORRUPT_INPUT,
                std::string("etcd reply: field '") + name + "' is not an integer");
}

Result<std::string> BytesField(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return std::string();
  if (!it->is_string()) {
    return Status(ErrorCode::CORRUPT_INPUT,
                  std::string("etcd reply: field '") + name + "' is not a string");
  }
  return Base64Decode(it->get_ref<const std::string&>(), name);
}

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// One HTTP client: a curl handle (its connection is reused) used by one thread only.
class HttpClient {
 public:
  HttpClient(const EtcdOptions& options, std::atomic<size_t>* current)
      : options_(options), current_(current), curl_(curl_easy_init()) {
    TIDAL_ASSERT_MSG(curl_ != nullptr, "curl_easy_init failed");
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    TIDAL_ASSERT(headers_ != nullptr);
  }
  ~HttpClient() {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(curl_);
  }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // POSTs `request` to `path` and returns the parsed reply of a 200 answer; an error
  // answer is mapped to a Status (see the header).
  Result<json> Call(std::string_view path, const json& request) {
    const std::string body = request.dump();
    const size_t n = options_.endpoints.size();
    const size_t first = current_->load() % n;
    std::string refused;
    for (size_t k = 0; k < n; ++k) {
      const size_t idx = (first + k) % n;
      const std::string url = "http://" + options_.endpoints[idx] + std::string(path);
      std::string reply;
      char error[CURL_ERROR_SIZE] = {0};
      curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");  // etcd is reached directly
      curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(curl_, CURLOPT_POST, 1L);
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.size()));
      curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
      curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &AppendBody);
      curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &reply);
      curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
      curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, long(options_.connect_timeout_ms));
      curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, long(options_.request_timeout_ms));
      const CURLcode rc = curl_easy_perform(curl_);
      curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
      const std::string what = error[0] != 0 ? error : curl_easy_strerror(rc);
      if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
        if (!refused.empty()) refused += ", ";
        refused += url + " (" + what + ")";
        continue;
      }
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        return Status(ErrorCode::RPC_TIMEOUT,
                      "etcd request " + url + " got no answer within " +
                          std::to_string(options_.request_timeout_ms) + " ms: " + what);
      }
      if (rc != CURLE_OK) {
        return Status(ErrorCode::RPC_FAIL, "etcd request " + url + " failed: " + what);
      }
      current_->store(idx);
      long http = 0;
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &http);
      return ParseReply(url, http, reply);
    }
    return Status(ErrorCode::RPC_FAIL, "cannot connect to etcd: " + refused);
  }

 private:
  static Result<json> ParseReply(const std::string& url, long http, const std::string& reply) {
    json j = json::parse(reply, nullptr, /*allow_exceptions=*/false);
    if (http == 200) {
      if (reply.empty()) return json::object();
      if (j.is_discarded() || !j.is_object()) {
        return Status(ErrorCode::CORRUPT_INPUT, "etcd reply from " + url + " is not a JSON object");
      }
      return j;
    }
    if (j.is_discarded() || !j.is_object() || !j.contains("code")) {
      return Status(ErrorCode::RPC_FAIL,
                    "etcd request " + url + " answered HTTP " + std::to_string(http));
    }
    Result<int64_t> grpc = IntField(j, "code");
    std::string message = j.value("message", std::string());
    if (message.empty()) message = j.value("error", std::string());
    const std::string text = "etcd request " + url + ": " + message;
    switch (grpc.ok() ? *grpc : -1) {
      case 3:   // INVALID_ARGUMENT (an empty key, a request over the size limit, ...)
      case 11:  // OUT_OF_RANGE
        return Status(ErrorCode::INVALID_PARAMS, text);
      case 4:  // DEADLINE_EXCEEDED
        return Status(ErrorCode::RPC_TIMEOUT, text);
      case 5:  // NOT_FOUND: the only resource the requests we make can miss is the lease
        return Status(ErrorCode::LEASE_EXPIRED, text);
      default:
        return Status(ErrorCode::RPC_FAIL, text);
    }
  }

  const EtcdOptions& options_;
  std::atomic<size_t>* current_;
  CURL* curl_;
  curl_slist* headers_ = nullptr;
};

template <typename T>
struct Pending {
  std::optional<T> value;
  std::coroutine_handle<> waiter;
  bool abandoned = false;  // the awaiting frame was destroyed (executor thread only)
};

}  // namespace

// ----------------------------------------------------------------------------------------

class EtcdMetadataStore::Impl {
 public:
  Impl(RealEnv& env, EtcdOptions options) : env_(env), options_(std::move(options)) {
    worker_ = std::thread([this] { WorkerLoop(); });
    if (options_.lease_ttl_s > 0) keeper_ = std::thread([this] { KeeperLoop(); });
  }

  ~Impl() {
    StopKeeper();
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  const EtcdOptions& options() const { return options_; }
  int64_t lease_id() const { return lease_mirror_.load(); }

  // Runs `fn` on the worker and resumes the awaiting coroutine with its value.
  template <typename T>
  class CallAwaiter {
   public:
    CallAwaiter(Impl* impl, std::function<T(HttpClient&)> fn)
        : impl_(impl), fn_(std::move(fn)), st_(std::make_shared<Pending<T>>()) {}
    CallAwaiter(const CallAwaiter&) = delete;
    CallAwaiter& operator=(const CallAwaiter&) = delete;
    ~CallAwaiter() {
      if (st_->waiter && !st_->value.has_value()) st_->abandoned = true;
    }
    bool await_ready() noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      st_->waiter = h;
      RealEnv* env = &impl_->env_;
      env->AddPoster();  // a reply is on its way: RunUntil waits for it
      impl_->Enqueue(false, [st = st_, fn = std::move(fn_), env](HttpClient* client) {
        T v = client != nullptr ? fn(*client) : T(Status(ErrorCode::RPC_FAIL, "etcd store closed"));
        env->Post([st, v = std::move(v)]() mutable {
          if (st->abandoned) return;
          st->value.emplace(std::move(v));
          st->waiter.resume();
        });
        env->RemovePoster();
      });
    }
    T await_resume() { return std::move(*st_->value); }

   private:
    Impl* impl_;
    std::function<T(HttpClient&)> fn_;
    std::shared_ptr<Pending<T>> st_;
  };

  // Not a coroutine itself: the awaiter is a named local of the frame that awaits it
  // (GCC 12 mishandles the destruction of temporaries inside a co_await expression).
  template <typename T>
  static Task<T> Call(Impl* impl, std::function<T(HttpClient&)> fn) {
    CallAwaiter<T> awaiter(impl, std::move(fn));
    co_return co_await awaiter;
  }

  bool IsLeased(std::string_view key) const {
    if (options_.lease_ttl_s == 0) return false;
    for (const std::string& p : options_.leased_prefixes) {
      if (key.substr(0, p.size()) == p) return true;
    }
    return false;
  }

  // ---- Worker-side operations (worker thread only) -------------------------------------

  Status PutRaw(HttpClient& c, const std::string& key, const std::string& value, int64_t lease) {
    json req = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
    if (lease != 0) req["lease"] = std::to_string(lease);
    Result<json> r = c.Call("/v3/kv/put", req);
    return r.status();
  }

  Status Grant(HttpClient& c) {
    Result<json> r = c.Call("/v3/lease/grant", {{"TTL", std::to_string(options_.lease_ttl_s)}});
    if (!r.ok()) return r.status();
    Result<int64_t> id = IntField(*r, "ID");
    if (!id.ok()) return id.status();
    if (*id == 0) {
      return Status(ErrorCode::RPC_FAIL, "etcd granted no lease: " + r->value("error", std::string()));
    }
    SetLease(*id);
    return Status();
  }

  // Writes every leased record again under the current lease (after a lost lease).
  Status Reput(HttpClient& c) {
    for (const auto& [k, v] : records_) TIDAL_RETURN_IF_ERROR(PutRaw(c, k, v, lease_));
    return Status();
  }

  Status Put(HttpClient& c, const std::string& key, const std::string& value) {
    if (!IsLeased(key)) return PutRaw(c, key, value, 0);
    if (lease_ == 0) TIDAL_RETURN_IF_ERROR(Grant(c));
    Status s = PutRaw(c, key, value, lease_);
    if (s.code() == ErrorCode::LEASE_EXPIRED) {
      // The lease ran out (the keep-alives did not get through): a new one, everything again.
      SetLease(0);
      TIDAL_RETURN_IF_ERROR(Grant(c));
      TIDAL_RETURN_IF_ERROR(Reput(c));
      s = PutRaw(c, key, value, lease_);
    }
    if (s.ok()) records_[key] = value;
    return s;
  }

  Result<std::string> Get(HttpClient& c, const std::string& key) {
    Result<json> r = c.Call("/v3/kv/range", {{"key", Base64Encode(key)}});
    if (!r.ok()) return r.status();
    auto kvs = r->find("kvs");
    if (kvs == r->end() || !kvs->is_array() || kvs->empty()) {
      return Status(ErrorCode::OBJECT_NOT_FOUND, "no metadata key " + key + " in etcd");
    }
    const json& kv = kvs->front();
    if (!kv.is_object()) return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: kvs[0] is not an object");
    Result<std::string> got_key = BytesField(kv, "key");
    if (!got_key.ok()) return got_key.status();
    if (*got_key != key) {
      return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: asked for key " + key + ", got another");
    }
    return BytesField(kv, "value");
  }

  Status Delete(HttpClient& c, const std::string& key) {
    Result<json> r = c.Call("/v3/kv/deleterange", {{"key", Base64Encode(key)}});
    if (!r.ok()) return r.status();
    records_.erase(key);
    Result<int64_t> deleted = IntField(*r, "deleted");
    if (!deleted.ok()) return deleted.status();
    if (*deleted == 0) return Status(ErrorCode::OBJECT_NOT_FOUND, "no metadata key " + key + " in etcd");
    return Status();
  }

  Result<KeyValues> List(HttpClient& c, const std::string& prefix) {
    const std::string end = etcd_detail::PrefixRangeEnd(prefix);
    std::string start = prefix.empty() ? std::string(1, '\0') : prefix;
    int64_t revision = 0;  // pages after the first read the first one's snapshot
    KeyValues out;
    for (;;) {
      json req = {{"key", Base64Encode(start)},
                  {"range_end", Base64Encode(end)},
                  {"limit", std::to_string(kListPage)}};
      if (revision != 0) req["revision"] = std::to_string(revision);
      Result<json> r = c.Call("/v3/kv/range", req);
      if (!r.ok()) return r.status();
      if (revision == 0) {
        auto header = r->find("header");
        if (header == r->end() || !header->is_object()) {
          return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: range without a header");
        }
        Result<int64_t> rev = IntField(*header, "revision");
        if (!rev.ok()) return rev.status();
        if (*rev <= 0) return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: revision is not positive");
        revision = *rev;
      }
      auto kvs = r->find("kvs");
      if (kvs == r->end()) break;
      if (!kvs->is_array()) return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: kvs is not a list");
      for (const json& kv : *kvs) {
        if (!kv.is_object()) return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: a kv is not an object");
        Result<std::string> k = BytesField(kv, "key");
        if (!k.ok()) return k.status();
        Result<std::string> v = BytesField(kv, "value");
        if (!v.ok()) return v.status();
        const bool ordered = out.empty() ? *k >= start : *k > out.back().first;
        if (!ordered || k->compare(0, prefix.size(), prefix) != 0) {
          return Status(ErrorCode::CORRUPT_INPUT, "etcd reply: range returned key " + *k +
                                                      " out of order or outside the prefix");
        }
        out.emplace_back(std::move(*k), std::move(*v));
      }
      auto more = r->find("more");
      if (more == r->end() || !more->is_boolean() || !more->get<bool>() || kvs->empty()) break;
      start = out.back().first + std::string(1, '\0');
    }
    return out;
  }

  Status Revoke(HttpClient& c) {
    if (lease_ == 0) return Status();
    Result<json> r = c.Call("/v3/lease/revoke", {{"ID", std::to_string(lease_)}});
    if (!r.ok() && r.code() != ErrorCode::LEASE_EXPIRED) return r.status();
    SetLease(0);  // revoked, or it had already expired: either way its keys are gone
    records_.clear();
    return Status();
  }

  // From the keeper: etcd says lease `lost` is gone. Grant another and write the leased
  // records again. On failure the keeper asks again on its next round.
  void Regrant(HttpClient& c, int64_t lost) {
    if (lease_ != lost) return;  // already replaced or revoked
    SetLease(0);
    if (records_.empty()) return;  // nothing to keep: the next leased Put grants one
    Status s = Grant(c);
    if (s.ok()) s = Reput(c);
    if (!s.ok()) regrant_pending_.store(true);
  }

  // ---- Keeper --------------------------------------------------------------------------

  void StopKeepAlive() { StopKeeper(); }

 private:
  void SetLease(int64_t id) {
    lease_ = id;
    lease_mirror_.store(id);
  }

  void Enqueue(bool front, std::function<void(HttpClient*)> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (front) {
        jobs_.push_front(std::move(job));
      } else {
        jobs_.push_back(std::move(job));
      }
    }
    cv_.notify_all();
  }

  void WorkerLoop() {
    HttpClient client(options_, &current_endpoint_);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return closing_ || !jobs_.empty(); });
      if (jobs_.empty()) break;  // closing and drained
      std::function<void(HttpClient*)> job = std::move(jobs_.front());
      jobs_.pop_front();
      const bool closing = closing_;
      lock.unlock();
      job(closing ? nullptr : &client);
      lock.lock();
    }
    lock.unlock();
    (void)Revoke(client);  // best effort: if etcd is unreachable the lease expires by itself
  }

  void StopKeeper() {
    {
      std::lock_guard<std::mutex> lock(keeper_mu_);
      keeper_stop_ = true;
    }
    keeper_cv_.notify_all();
    if (keeper_.joinable()) keeper_.join();
  }

  void KeeperLoop() {
    HttpClient client(options_, &current_endpoint_);
    const auto period = std::chrono::milliseconds(options_.lease_ttl_s * 1000 / 3);
    const auto retry = std::min(period, std::chrono::milliseconds(500));
    auto wait = period;
    std::unique_lock<std::mutex> lock(keeper_mu_);
    for (;;) {
      if (keeper_cv_.wait_for(lock, wait, [&] { return keeper_stop_; })) return;
      lock.unlock();
      wait = period;
      if (regrant_pending_.exchange(false)) {
        Enqueue(true, [this](HttpClient* c) {
          if (c != nullptr) Regrant(*c, 0);
        });
      }
      const int64_t id = lease_mirror_.load();
      if (id != 0) {
        Result<json> r = client.Call("/v3/lease/keepalive", {{"ID", std::to_string(id)}});
        if (r.ok()) {
          auto result = r->find("result");
          Result<int64_t> ttl = result != r->end() && result->is_object()
                                    ? IntField(*result, "TTL")
                                    : Result<int64_t>(int64_t{0});
          if (ttl.ok() && *ttl <= 0) {
            // The lease is gone (it expired while etcd could not be reached).
            Enqueue(true, [this, id](HttpClient* c) {
              if (c != nullptr) Regrant(*c, id);
            });
          }
        } else {
          wait = retry;  // etcd unreachable or slow: try again sooner
        }
      }
      lock.lock();
    }
  }

  RealEnv& env_;
  const EtcdOptions options_;
  std::atomic<size_t> current_endpoint_{0};
  std::atomic<int64_t> lease_mirror_{0};
  std::atomic<bool> regrant_pending_{false};

  // Worker-thread state.
  int64_t lease_ = 0;
  std::map<std::string, std::string> records_;  // the leased records this store wrote

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(HttpClient*)>> jobs_;
  bool closing_ = false;
  std::thread worker_;

  std::mutex keeper_mu_;
  std::condition_variable keeper_cv_;
  bool keeper_stop_ = false;
  std::thread keeper_;
};

// ----------------------------------------------------------------------------------------

Result<std::unique_ptr<EtcdMetadataStore>> EtcdMetadataStore::Create(RealEnv& env,
                                                                     EtcdOptions options) {
  if (options.endpoints.empty()) {
    return Status(ErrorCode::INVALID_PARAMS, "etcd metadata store: no endpoint given");
  }
  for (const std::string& e : options.endpoints) {
    if (!etcd_detail::IsHostPort(e)) {
      return Status(ErrorCode::INVALID_PARAMS, "etcd endpoint '" + e + "' is not HOST:PORT");
    }
  }
  if (options.request_timeout_ms == 0 || options.connect_timeout_ms == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "etcd metadata store: timeouts must be positive");
  }
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::unique_ptr<EtcdMetadataStore>(
      new EtcdMetadataStore(std::make_unique<Impl>(env, std::move(options))));
}

EtcdMetadataStore::EtcdMetadataStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdMetadataStore::~EtcdMetadataStore() = default;

Task<Status> EtcdMetadataStore::Put(std::string key, std::string value) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "metadata key is empty");
  Impl* impl = impl_.get();
  std::function<Status(HttpClient&)> fn = [impl, key = std::move(key),
                                           value = std::move(value)](HttpClient& c) {
    return impl->Put(c, key, value);
  };
  Task<Status> call = Impl::Call<Status>(impl, std::move(fn));
  co_return co_await std::move(call);
}

Task<Result<std::string>> EtcdMetadataStore::Get(std::string key) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "metadata key is empty");
  Impl* impl = impl_.get();
  std::function<Result<std::string>(HttpClient&)> fn = [impl, key = std::move(key)](
                                                           HttpClient& c) {
    return impl->Get(c, key);
  };
  Task<Result<std::string>> call = Impl::Call<Result<std::string>>(impl, std::move(fn));
  co_return co_await std::move(call);
}

Task<Status> EtcdMetadataStore::Delete(std::string key) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "metadata key is empty");
  Impl* impl = impl_.get();
  std::function<Status(HttpClient&)> fn = [impl, key = std::move(key)](HttpClient& c) {
    return impl->Delete(c, key);
  };
  Task<Status> call = Impl::Call<Status>(impl, std::move(fn));
  co_return co_await std::move(call);
}

Task<Result<KeyValues>> EtcdMetadataStore::List(std::string prefix) {
  Impl* impl = impl_.get();
  std::function<Result<KeyValues>(HttpClient&)> fn = [impl, prefix = std::move(prefix)](
                                                         HttpClient& c) {
    return impl->List(c, prefix);
  };
  Task<Result<KeyValues>> call = Impl::Call<Result<KeyValues>>(impl, std::move(fn));
  co_return co_await std::move(call);
}

Task<Status> EtcdMetadataStore::RevokeLease() {
  Impl* impl = impl_.get();
  std::function<Status(HttpClient&)> fn = [impl](HttpClient& c) { return impl->Revoke(c); };
  Task<Status> call = Impl::Call<Status>(impl, std::move(fn));
  co_return co_await std::move(call);
}

void EtcdMetadataStore::StopKeepAlive() { impl_->StopKeepAlive(); }

int64_t EtcdMetadataStore::lease_id() const { return impl_->lease_id(); }

const EtcdOptions& EtcdMetadataStore::options() const { return impl_->options(); }

}  // namespace tidal::backends
