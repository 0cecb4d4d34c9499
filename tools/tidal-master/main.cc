// tidal-master: the control plane of real tidal processes. One TcpMessenger endpoint
// named "master" serves, on the channels master_link.h assigns,
//   * the segment-metadata MetadataStore (MetadataService over the store that --metadata
//     names: mem:// by default, etcd://HOST:PORT through MakeMetadataStore), which is also
//     the directory where endpoints publish "tidal/endpoints/<name>" -> "host:port";
//   * the store master (store::MasterService), for StoreClients whose options.master is
//     "master".
//
//   tidal-master [--listen 127.0.0.1:0] [--metadata mem://] [--lease-ttl-ms 10000]
//                [--state-dir DIR [--state-sync]]
//       serves until SIGINT or SIGTERM (then exits 0). Prints one line when it is ready:
//       "tidal-master listening on HOST:PORT" (the port it bound, if 0 was asked).
//       With --state-dir the store master journals its state to DIR/store.journal, and
//       the mem:// metadata (segment descriptors, endpoint directory) to
//       DIR/metadata.journal (file_journal.h); a master started again on the same DIR
//       (and the same --listen address, which clients dial) rebuilds both: acknowledged
//       objects read back with the same bytes and generation (store README: "Master
//       restart"). A journal that does not read back is an error (exit 2), never an
//       empty store.
//   tidal-master --status HOST:PORT [--json]
//       asks a running master for its status: a table, or with --json one JSON object.
//
// Malformed, truncated or oversized frames are logged and their connection closed;
// malformed requests inside good frames are logged and answered CORRUPT_INPUT where the
// request can be named. Neither changes stored state.
#include <csignal>
#include <filesystem>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/cli.h"
#include "file_journal.h"
#include "tidal/backends/metadata_factory.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/master_link.h"
#include "tidal/backends/tcp/metadata_rpc.h"
#include "tidal/backends/tcp/tcp_messenger.h"
#include "tidal/messenger_mux.h"
#include "tidal/store/master.h"

namespace {

using tidal::backends::RealEnv;
namespace tcp = tidal::backends::tcp;

volatile std::sig_atomic_t g_signal = 0;
extern "C" void OnSignal(int sig) { g_signal = sig; }

constexpr uint64_t kSignalPollNs = 50'000'000;  // how often the loop looks at g_signal

size_t CountPrefix(const tidal::KeyValues& all, std::string_view prefix) {
  size_t n = 0;
  for (const auto& [k, v] : all) n += k.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

struct Server {
  RealEnv env{"master"};
  std::string metadata_url;
  uint64_t started_ns = 0;
  std::unique_ptr<tidal::MetadataStore> metadata;
  std::string state_dir;
  std::unique_ptr<tidal::tools::FileJournal> store_journal;
  std::unique_ptr<tcp::TcpMessenger> messenger;
  std::unique_ptr<tidal::MessengerMux> mux;
  std::unique_ptr<tcp::DuplexMessenger> store_port, metadata_port;
  std::unique_ptr<tidal::store::MasterService> master;
  std::unique_ptr<tcp::MetadataService> service;

  std::string StatusJson(const tidal::KeyValues* all) {
    nlohmann::json j;
    j["endpoint"] = std::string(messenger->LocalName());
    j["address"] = messenger->address();
    j["metadata"] = metadata_url;
    j["state_dir"] = state_dir;
    j["uptime_s"] = static_cast<double>(env.NowNs() - started_ns) / 1e9;
    if (all != nullptr) {
      j["metadata_keys"] = all->size();
      j["endpoints"] = CountPrefix(*all, tcp::kEndpointKeyPrefix);
      j["segments"] = CountPrefix(*all, "tidal/segments/");
    } else {
      j["metadata_keys"] = nullptr;  // the backing store could not list its keys
    }
    const tidal::store::MasterStats st = master->state().stats();
    j["store"] = {{"incarnation", st.incarnation},
                  {"recovered_objects", st.recovered_objects},
                  {"objects", st.objects},           {"puts_started", st.puts_started},
                  {"puts_ended", st.puts_ended},     {"puts_revoked", st.puts_revoked},
                  {"puts_reclaimed", st.puts_reclaimed}, {"evicted", st.evicted},
                  {"removed", st.removed},           {"leases_granted", st.leases_granted},
                  {"lost", st.lost},                 {"clients_died", st.clients_died},
                  {"puts_committed", st.puts_committed},
                  {"reservations", st.reservations},
                  {"reservations_granted", st.reservations_granted},
                  {"reservations_released", st.reservations_released},
                  {"reservations_reclaimed", st.reservations_reclaimed},
                  {"capacity_bytes", st.capacity_bytes}, {"used_bytes", st.used_bytes},
                  {"rpc_requests", master->server().requests()},
                  {"rpc_malformed", master->server().malformed()}};
    const tcp::TcpMessengerStats ms = messenger->stats();
    j["messenger"] = {{"connections_accepted", ms.accepted},
                      {"messages_received", ms.messages_received},
                      {"messages_sent", ms.messages_sent},
                      {"messages_lost", ms.messages_lost},
                      {"frames_rejected", ms.frames_rejected},
                      {"channel_dropped", mux->dropped()}};
    j["metadata_service"] = {{"requests", service->stats().requests},
                             {"malformed", service->stats().malformed}};
    return j.dump();
  }
};

int Serve(const std::string& listen, const std::string& metadata_url,
          const tidal::store::MasterOptions& master_options, const std::string& state_dir,
          bool state_sync, uint64_t spin_ns) {
  Server s;
  s.env.SetSpinNs(spin_ns);
  s.metadata_url = metadata_url;
  s.state_dir = state_dir;
  s.started_ns = s.env.NowNs();
  if (!state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) {
      std::cerr << "tidal-master: --state-dir " << state_dir << ": " << ec.message() << "\n";
      return 2;
    }
    auto journal = tidal::tools::FileJournal::Open(state_dir + "/store.journal", state_sync);
    if (!journal.ok()) {
      std::cerr << "tidal-master: --state-dir: " << journal.status().ToString() << "\n";
      return 2;
    }
    s.store_journal = std::move(journal).value();
  }
  if (!state_dir.empty() && metadata_url == "mem://") {
    auto journal = tidal::tools::FileJournal::Open(state_dir + "/metadata.journal", state_sync);
    if (!journal.ok()) {
      std::cerr << "tidal-master: --state-dir: " << journal.status().ToString() << "\n";
      return 2;
    }
    s.metadata = std::make_unique<tidal::tools::JournaledMetadataStore>(std::move(journal).value());
  } else {
    auto md = tidal::backends::MakeMetadataStore(metadata_url, s.env);
    if (!md.ok()) {
      std::cerr << "tidal-master: --metadata: " << md.status().ToString() << "\n";
      return 2;
    }
    s.metadata = std::move(md).value();
  }
  tcp::TcpMessengerOptions mo;
  mo.name = std::string(tcp::kMasterEndpoint);
  mo.listen = listen;
  auto m = tcp::TcpMessenger::Start(s.env, mo);
  if (!m.ok()) {
    std::cerr << "tidal-master: " << m.status().ToString() << "\n";
    return 1;
  }
  s.messenger = std::move(m).value();
  s.mux = std::make_unique<tidal::MessengerMux>(*s.messenger);
  s.store_port = std::make_unique<tcp::DuplexMessenger>(s.mux->Channel(tcp::kStoreAnswerChannel),
                                                        s.mux->Channel(tcp::kStoreRequestChannel));
  s.metadata_port = std::make_unique<tcp::DuplexMessenger>(
      s.mux->Channel(tcp::kMetadataAnswerChannel), s.mux->Channel(tcp::kMetadataRequestChannel));
  s.master = std::make_unique<tidal::store::MasterService>(s.env, *s.store_port, master_options,
                                                           s.store_journal.get());
  if (!s.master->recovery().ok()) {
    std::cerr << "tidal-master: --state-dir: " << s.master->recovery().ToString() << "\n";
    return 2;
  }
  s.master->Start();
  s.service = std::make_unique<tcp::MetadataService>(
      s.env, *s.metadata_port, *s.metadata,
      [&s](const tidal::KeyValues* all) { return s.StatusJson(all); });

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::cout << "tidal-master listening on " << s.messenger->address() << std::endl;
  // The loop sleeps in RunUntil; a timer wakes it to look for a signal.
  std::function<void()> poll = [&]() {
    if (g_signal == 0) s.env.ScheduleAfter(kSignalPollNs, poll);
  };
  poll();
  s.env.RunUntil([]() { return g_signal != 0; });
  std::cerr << "tidal-master: signal " << static_cast<int>(g_signal) << ", stopping\n";
  s.service.reset();
  s.master.reset();
  s.metadata_port.reset();
  s.store_port.reset();
  s.mux.reset();
  s.messenger.reset();
  s.metadata.reset();
  return 0;
}

void PrintTable(const nlohmann::json& j, const std::string& prefix) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_object()) {
      PrintTable(*it, prefix + it.key() + ".");
    } else {
      std::printf("%-36s %s\n", (prefix + it.key()).c_str(), it->dump().c_str());
    }
  }
}

int Status(const std::string& address, bool json, uint64_t timeout_ms) {
  RealEnv env("status");
  tcp::MasterLinkOptions o;
  char name[40];
  std::snprintf(name, sizeof name, "tidal-status-%016llx",
                static_cast<unsigned long long>(env.RandomU64()));
  o.name = name;
  o.master = address;
  o.rpc_timeout_ns = timeout_ms * 1'000'000;
  auto link = tcp::MasterLink::Start(env, o);
  if (!link.ok()) {
    std::cerr << "tidal-master --status: " << link.status().ToString() << "\n";
    return 2;
  }
  auto status = tidal::RunBlocking(env, (*link)->metadata().ServerStatus());
  if (!status.ok()) {
    std::cerr << "tidal-master --status " << address << ": " << status.status().ToString()
              << "\n";
    return 1;
  }
  nlohmann::json j = nlohmann::json::parse(*status, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    std::cerr << "tidal-master --status: the answer is not JSON\n";
    return 1;
  }
  if (json) {
    std::cout << j.dump() << "\n";
  } else {
    PrintTable(j, "");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description desc(
      "tidal-master: segment metadata and the store master over TCP\n"
      "  tidal-master [--listen HOST:PORT] [--metadata URL]   serve until SIGINT/SIGTERM\n"
      "  tidal-master --status HOST:PORT [--json]              ask a running master\n"
      "Options");
  desc.add_options()("help,h", "print this help")(
      "listen", po::value<std::string>()->default_value("127.0.0.1:0"),
      "address to serve on; port 0 picks a free one (printed in the ready line)")(
      "metadata", po::value<std::string>()->default_value("mem://"),
      "metadata store behind the service: mem:// or etcd://HOST:PORT[,...]")(
      "status", po::value<std::string>(), "ask the master at HOST:PORT for its status and exit")(
      "json", "with --status: print one JSON object instead of the table")(
      "timeout-ms", po::value<uint64_t>()->default_value(3000),
      "with --status: how long to wait for the answer")(
      "lease-ttl-ms", po::value<uint64_t>()->default_value(10'000),
      "store: the read lease every GetReplicaList grants (a client's Stop waits for it)")(
      "state-dir", po::value<std::string>()->default_value(""),
      "keep the store master's state (and mem:// metadata) in journals in this directory, "
      "so that a master restarted on it (and on the same --listen address) rebuilds them")(
      "state-sync", "with --state-dir: fdatasync every journal write (survives a machine "
      "crash, not only a process crash)")(
      "spin-us", po::value<uint64_t>()->default_value(0),
      "before the event loop sleeps, it polls this long for a request (saves a thread "
      "wake-up per request while requests keep coming; burns a core meanwhile; 0: sleep at "
      "once)");
  po::variables_map vm;
  if (auto rc = tidal::tools::ParseCommandLine(argc, argv, desc, &vm)) return *rc;
  if (vm.count("status")) {
    return Status(vm["status"].as<std::string>(), vm.count("json") != 0,
                  vm["timeout-ms"].as<uint64_t>());
  }
  if (vm.count("json")) {
    std::cerr << "--json goes with --status\n" << desc;
    return 2;
  }
  tidal::store::MasterOptions master_options;
  master_options.lease_ttl_ns = vm["lease-ttl-ms"].as<uint64_t>() * 1'000'000;
  if (master_options.lease_ttl_ns == 0) {
    std::cerr << "--lease-ttl-ms must be above 0\n" << desc;
    return 2;
  }
  if (vm.count("state-sync") && vm["state-dir"].as<std::string>().empty()) {
    std::cerr << "--state-sync goes with --state-dir\n" << desc;
    return 2;
  }
  return Serve(vm["listen"].as<std::string>(), vm["metadata"].as<std::string>(), master_options,
               vm["state-dir"].as<std::string>(), vm.count("state-sync") != 0,
               vm["spin-us"].as<uint64_t>() * 1000);
}
