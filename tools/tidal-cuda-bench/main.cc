// tidal-cuda-bench: GPU measurements on the CUDA backend, each beside its baseline in the
// same run.
//
//   tidal-cuda-bench transfer   GPU0 -> GPU1 WRITE through the TransferEngine on CudaFabric
//                               vs cudaMemcpyPeerAsync on the same buffers, 1 MiB .. 1 GiB,
//                               with the ratio; --window W keeps W requests in flight (one
//                               batch) against W queued copies; each row also says where the
//                               time went: the engine's Submit per request and the wait for
//                               the batch, beside cudaMemcpyPeerAsync's issue and synchronize,
//                               and the transport's completion events and event queries per
//                               batch (--event-bytes sets CudaTransport::SetEventBytes).
//   tidal-cuda-bench nccl       NCCL allreduce / allgather / reduce_scatter / broadcast /
//                               alltoall over every visible GPU (one process), algbw and
//                               busbw as nccl-tests defines them (float, out of place).
//   tidal-cuda-bench hops       the fixed cost of each hand-off of the chunk path (reducer
//                               work seen done on the event loop, an engine WRITE) beside
//                               the bare CUDA calls, small payloads.
//   tidal-cuda-bench coll       the same five collectives through tidal's ProcessGroup on
//                               GPU tensors (one rank per GPU on CudaFabric, slots and
//                               working memory on the GPUs, CudaReducer) AND through NCCL,
//                               size by size in the same run, with busbw and the ratio
//                               tidal/NCCL; then (--kill) an allreduce over 3 ranks with
//                               rank 1 killed mid-run: how long until the survivors knew
//                               and until they finished. --register registers the tensors
//                               (RegisterBuffer), --chunks/--chunk-min split messages,
//                               --loops rank gives each rank an event loop and a thread,
//                               --direct-outputs sets ProcessGroupOptions::direct_outputs
//                               (outputs are the working memory, no copy on commit) and
//                               runs allreduce and broadcast out of place, as NCCL's;
//                               with --register too, broadcast and alltoall receivers
//                               READ registered inputs (device_pull; --no-pull pushes).
//   tidal-cuda-bench kernels    the reducer's copy and fold kernels on GPU0 beside
//                               cudaMemcpyAsync device to device, for several grid sizes.
//
// Each prints a table and, with --json FILE, writes the same figures as JSON. Nothing is
// asserted: this is a measurement, not a test.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../common/stats.h"
#include "tidal/backends/cuda/cuda_fabric.h"
#include "tidal/backends/real_env.h"
#include "tidal/collectives/chunk_trace.h"
#include "tidal/collectives/process_group.h"
#include "tidal/collectives/reduce_cuda.h"
#include "tidal/collectives/schedule.h"

#if TIDAL_BENCH_HAVE_NCCL
#include <nccl.h>
#endif

namespace po = boost::program_options;
using tidal::backends::cuda::CudaFabric;
using tidal::backends::cuda::CudaFabricOptions;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#define CUDA_OK(x)                                                                   \
  do {                                                                               \
    cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                  \
    }                                                                                \
  } while (0)

std::vector<uint64_t> Sizes(uint64_t min, uint64_t max, uint64_t step) {
  std::vector<uint64_t> out;
  for (uint64_t s = min; s <= max; s *= step) out.push_back(s);
  return out;
}

using tidal::tools::Median;

// "lo-hi" of per-trial ratios, for the tables' min-max column; "-" for none.
std::string RatioRange(const std::vector<double>& ratios) {
  if (ratios.empty()) return "-";
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f-%.3f", *lo, *hi);
  return buf;
}

int Iters(uint64_t bytes, int iters) {
  // Enough to run ~0.1 s at 300 GB/s, at least 5, at most `iters`.
  uint64_t want = (30ULL << 30) / std::max<uint64_t>(bytes, 1);
  return static_cast<int>(std::clamp<uint64_t>(want, 5, static_cast<uint64_t>(iters)));
}

std::string Human(uint64_t b) {
  char buf[32];
  if (b >= (1ULL << 30)) std::snprintf(buf, sizeof buf, "%llu GiB", (unsigned long long)(b >> 30));
  else if (b >= (1ULL << 20)) std::snprintf(buf, sizeof buf, "%llu MiB", (unsigned long long)(b >> 20));
  else std::snprintf(buf, sizeof buf, "%llu KiB", (unsigned long long)(b >> 10));
  return buf;
}

// Where the hand-offs of the data path wait: the event loop, the transports' progress
// threads and the reducer's completion thread poll for `--spin-us` before they sleep
// (0: sleep at once, the hand-off pays a wake-up); `--completion hostfunc` sees reducer
// work finish through cudaLaunchHostFunc instead of polled events.
// `--caller-poll 1` (the default, as CudaTransport's): while the loop spins it asks the
// transports' completion events itself (CudaTransport::SetCallerPolling) and the reducer's
// (CudaReducer::PollFromCaller as a spin poller of the loop); 0: the transports' progress
// threads and the reducer's completion thread alone poll, and hand completions over.
bool CallerPoll(const po::variables_map& vm) { return vm["caller-poll"].as<int>() != 0; }

void AddReducerPoller(tidal::backends::RealEnv& env, const po::variables_map& vm) {
  if (CallerPoll(vm)) env.AddSpinPoller([] { tidal::coll::CudaReducer::PollFromCaller(); });
}

void ApplyWaits(CudaFabric& f, const po::variables_map& vm) {
  const uint64_t spin_ns = static_cast<uint64_t>(vm["spin-us"].as<double>() * 1e3);
  const uint64_t gap_ns = static_cast<uint64_t>(vm["poll-gap-us"].as<double>() * 1e3);
  if (auto* real = dynamic_cast<tidal::backends::RealEnv*>(&f.env(0))) {
    real->SetSpinNs(spin_ns);
    AddReducerPoller(*real, vm);
  }
  for (size_t i = 0; i < f.size(); ++i) {
    f.cuda_transport(i).SetCallerPolling(CallerPoll(vm));
    f.cuda_transport(i).SetBatchRamp(vm["batch-ramp"].as<int>() != 0);
    f.cuda_transport(i).SetIdleSpinNs(spin_ns);
    f.cuda_transport(i).SetPollGapNs(gap_ns);
    f.cuda_transport(i).SetEventBytes(vm["event-bytes"].as<uint64_t>());
    f.cuda_transport(i).SetStreamsPerPeer(vm["streams-per-peer"].as<uint32_t>());
  }
  tidal::coll::CudaReducer::SetCompletion(vm["completion"].as<std::string>() == "hostfunc"
                                              ? tidal::coll::CudaReducer::Completion::kHostFunc
                                              : tidal::coll::CudaReducer::Completion::kPoll,
                                          spin_ns, gap_ns);
}

// One batch of `reqs` through the engine, timed in two parts: `issue` is the engine's
// Submit (the requests' validation, slicing and the transport's Submit, which enqueues every
// copy), `wait` from there until WaitBatch resumed (the copies, the completions' polling,
// their drain on the event loop). True when every request COMPLETED.
struct BatchTimes {
  double issue = 0, wait = 0;
};
tidal::Task<bool> TimedBatch(tidal::TransferEngine& e,
                             const std::vector<tidal::TransferRequest>* reqs, BatchTimes* t) {
  tidal::Result<tidal::BatchId> batch = e.AllocateBatch(reqs->size());
  if (!batch.ok()) co_return false;
  const double t0 = Now();
  std::vector<tidal::Status> accepted = e.Submit(*batch, std::span(*reqs));
  const double t1 = Now();
  tidal::Status waited = co_await e.WaitBatch(*batch);
  const double t2 = Now();
  t->issue += t1 - t0;
  t->wait += t2 - t1;
  bool ok = waited.ok();
  for (size_t i = 0; i < reqs->size(); ++i) {
    tidal::Result<tidal::TransferStatus> s = e.GetStatus(*batch, i);
    ok = ok && accepted[i].ok() && s.ok() && s->state == tidal::TransferState::COMPLETED;
  }
  ok = e.FreeBatch(*batch).ok() && ok;
  co_return ok;
}

int Transfer(const po::variables_map& vm) {
  const uint64_t min = vm["min"].as<uint64_t>(), max = vm["max"].as<uint64_t>();
  const int iters = vm["iters"].as<int>();
  CudaFabricOptions o;
  o.nodes = 2;
  o.contract_checker = false;
  o.engine.slice_bytes = vm["slice"].as<uint64_t>();
  o.engine.transfer_timeout_ns = 60'000'000'000ULL;
  auto made = CudaFabric::Make(o);
  if (!made.ok()) {
    std::cerr << "cuda fabric: " << made.status().ToString() << "\n";
    return 1;
  }
  CudaFabric& f = **made;
  ApplyWaits(f, vm);
  if (f.device_count() < 2) {
    std::cerr << "transfer needs 2 GPUs; this machine has " << f.device_count() << "\n";
    return 1;
  }
  void* src = f.Allocate(0, max, tidal::Location::Cuda(0));
  void* dst = f.Allocate(1, max, tidal::Location::Cuda(1));
  {
    std::vector<uint8_t> pattern(max);
    for (uint64_t i = 0; i < max; ++i) pattern[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
    f.CopyIn(src, pattern.data(), max);
  }
  auto k0 = f.Run(f.engine(0).RegisterMemory(src, max, tidal::Location::Cuda(0)));
  auto k1 = f.Run(f.engine(1).RegisterMemory(dst, max, tidal::Location::Cuda(1)));
  auto seg = f.Run(f.engine(0).OpenSegment(CudaFabric::NodeName(1)));
  if (!k0.ok() || !k1.ok() || !seg.ok()) {
    std::cerr << "setup failed\n";
    return 1;
  }
  cudaStream_t stream;
  CUDA_OK(cudaSetDevice(0));
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  nlohmann::json rows = nlohmann::json::array();
  const uint64_t window = std::max<uint64_t>(1, vm["window"].as<uint64_t>());
  const int trials = std::max(1, vm["trials"].as<int>());
  const bool batched_default = f.cuda_transport(0).batch_copies();
  if (window == 1) {
    std::printf("# GPU0 -> GPU1 WRITE, engine slice %s, one request at a time (waited for) on "
                "both sides; spin %.0f us, caller polling %s, batch ramp %s\n",
                Human(o.engine.slice_bytes).c_str(), vm["spin-us"].as<double>(),
                CallerPoll(vm) ? "on" : "off", f.cuda_transport(0).batch_ramp() ? "on" : "off");
  } else {
    std::printf("# GPU0 -> GPU1 WRITE, engine slice %s, windows of up to %llu requests on both "
                "sides (tidal: one batch of W requests to W distinct ranges, waited for; "
                "memcpyPeer: W copies queued on one stream, then one synchronize); spin %.0f us, "
                "caller polling %s, batch ramp %s\n",
                Human(o.engine.slice_bytes).c_str(), static_cast<unsigned long long>(window),
                vm["spin-us"].as<double>(), CallerPoll(vm) ? "on" : "off",
                f.cuda_transport(0).batch_ramp() ? "on" : "off");
  }
  std::printf("# %d trials per size, the contenders' order rotated by one each trial; GB/s are "
              "medians over the trials, ratio = median memcpyPeer time / median tidal time, "
              "min-max: the lowest and highest ratio of one trial; copies sharing an event go "
              "out %s by default (CudaTransport::SetBatchCopies %s)\n",
              trials,
              !batched_default ? "one call each"
              : f.cuda_transport(0).batch_ramp()
                  ? "by cudaMemcpyBatchAsync, in two calls (SetBatchRamp on)"
                  : "by one cudaMemcpyBatchAsync",
              batched_default ? "on" : "off");
  std::printf("%10s %6s %14s %18s %8s %14s %12s %12s %12s %12s %8s %8s %14s %10s %12s %14s %8s %12s %8s\n", "size",
              "iters", "tidal GB/s", "memcpyPeer GB/s", "ratio", "min-max", "issue us/req", "wait us",
              "peer issue", "peer sync us", "events", "queries", "batchcpy GB/s", "b/peer",
              "batch issue", batched_default ? "tidal-bat GB/s" : "tidal+bat GB/s", "ratio",
              "issue us/req", "calls");
  std::printf("# issue us/req: the engine's Submit per request (host); wait us: Submit's return "
              "to the batch's completion, per batch; peer issue: cudaMemcpyPeerAsync per copy; "
              "peer sync us: cudaStreamSynchronize per window; events, queries: completion events the "
              "transport recorded and event queries its progress thread or the loop made, per batch; "
              "batchcpy: the same W copies issued by one cudaMemcpyBatchAsync on the same stream, "
              "then one synchronize (b/peer: its rate over memcpyPeer's; batch issue: the call's "
              "host time per copy); tidal+bat / tidal-bat: the engine with CudaTransport::SetBatchCopies "
              "flipped from its default (ratio to memcpyPeer, Submit per request, "
              "cudaMemcpyBatchAsync calls per batch)\n");
  bool all_ok = true;
  for (uint64_t size : Sizes(min, max, vm["step"].as<uint64_t>())) {
    // A window: w requests to w distinct ranges of the buffers (as many as fit), one batch.
    const uint64_t w = std::min<uint64_t>(window, max / size);
    const int n = Iters(size * w, iters);
    std::vector<tidal::TransferRequest> reqs;
    for (uint64_t k = 0; k < w; ++k) {
      reqs.push_back({tidal::TransferOp::kWrite, reinterpret_cast<uint64_t>(src) + k * size, size,
                      *seg, reinterpret_cast<uint64_t>(dst) + k * size});
    }
    BatchTimes bt;
    double peer_issue = 0, peer_sync = 0;
    // The engine as the transport is set by default, and (`once_b`, below) with
    // SetBatchCopies the other way.
    auto once = [&] { all_ok &= f.Run(TimedBatch(f.engine(0), &reqs, &bt)); };
    auto peer = [&] {
      const double t0 = Now();
      for (uint64_t k = 0; k < w; ++k) {
        CUDA_OK(cudaMemcpyPeerAsync(static_cast<char*>(dst) + k * size, 1,
                                    static_cast<char*>(src) + k * size, 0, size, stream));
      }
      const double t1 = Now();
      CUDA_OK(cudaStreamSynchronize(stream));
      peer_issue += t1 - t0;
      peer_sync += Now() - t1;
    };
    // The same window through one cudaMemcpyBatchAsync (CUDA 12.8+): one call for W copies.
    std::vector<void*> bdst(w);
    std::vector<const void*> bsrc(w);
    std::vector<size_t> bsizes(w, size);
    for (uint64_t k = 0; k < w; ++k) {
      bdst[k] = static_cast<char*>(dst) + k * size;
      bsrc[k] = static_cast<char*>(src) + k * size;
    }
    cudaMemcpyAttributes battr{};
    battr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t battr_idx = 0;
    double batch_issue = 0;
    auto batch = [&] {
      const double t0 = Now();
      CUDA_OK(cudaMemcpyBatchAsync(bdst.data(), bsrc.data(), bsizes.data(), w, &battr,
                                   &battr_idx, 1, stream));
      batch_issue += Now() - t0;
      CUDA_OK(cudaStreamSynchronize(stream));
    };
    for (int w = 0; w < 2; ++w) {
      once();
      peer();
      batch();
    }
    bt = BatchTimes();
    peer_issue = peer_sync = batch_issue = 0;
    // The engine again with CudaTransport::SetBatchCopies flipped (on: its Submit issues
    // the window's shared-event copies by one cudaMemcpyBatchAsync).
    BatchTimes bt_b;
    auto once_b = [&] {
      f.cuda_transport(0).SetBatchCopies(!batched_default);
      all_ok &= f.Run(TimedBatch(f.engine(0), &reqs, &bt_b));
      f.cuda_transport(0).SetBatchCopies(batched_default);
    };
    once_b();
    bt_b = BatchTimes();
    uint64_t batch_calls = 0, own_events = 0, own_queries = 0;
    // `trials` rounds; each times n windows of every contender, the order rotated by one
    // per round (so none always runs first or last); a contender's figure is the median of
    // its rounds, and the ratio columns are medians over medians. The first engine
    // contender runs the transport as set by default; the other flips SetBatchCopies.
    std::vector<double> r_tidal, r_peer, r_batch, r_tidal_b, r_ratio;
    std::vector<std::function<void()>> contenders = {
        [&] {
          const auto b = f.cuda_transport(0).counters();
          for (int i = 0; i < n; ++i) once();
          const auto a = f.cuda_transport(0).counters();
          own_events += a.events_recorded - b.events_recorded;
          own_queries += a.event_queries - b.event_queries;
        },
        [&] { for (int i = 0; i < n; ++i) peer(); },
        [&] { for (int i = 0; i < n; ++i) batch(); },
        [&] {
          const uint64_t b0 = f.cuda_transport(0).counters().batch_calls;
          for (int i = 0; i < n; ++i) once_b();
          batch_calls += f.cuda_transport(0).counters().batch_calls - b0;
        }};
    std::vector<double>* into[] = {&r_tidal, &r_peer, &r_batch, &r_tidal_b};
    for (int round = 0; round < trials; ++round) {
      for (size_t j = 0; j < contenders.size(); ++j) {
        const size_t c = (j + static_cast<size_t>(round)) % contenders.size();
        const double t0 = Now();
        contenders[c]();
        into[c]->push_back(Now() - t0);
      }
      r_ratio.push_back(r_peer.back() / r_tidal.back());
    }
    const double t_tidal = Median(r_tidal), t_peer = Median(r_peer);
    const double t_batch = Median(r_batch), t_tidal_b = Median(r_tidal_b);
    const double bytes = static_cast<double>(size) * static_cast<double>(w) * n;
    const double g_tidal = bytes / t_tidal / 1e9, g_peer = bytes / t_peer / 1e9;
    const double g_batch = bytes / t_batch / 1e9, g_tidal_b = bytes / t_tidal_b / 1e9;
    const double issue_b_us = bt_b.issue / (trials * n * static_cast<double>(w)) * 1e6;
    const double batches = static_cast<double>(trials) * n,
                 copies = batches * static_cast<double>(w);
    const double issue_us = bt.issue / copies * 1e6, wait_us = bt.wait / batches * 1e6;
    const double pissue_us = peer_issue / copies * 1e6, psync_us = peer_sync / batches * 1e6;
    const double events = static_cast<double>(own_events) / batches;
    const double queries = static_cast<double>(own_queries) / batches;
    const double bissue_us = batch_issue / copies * 1e6;
    const std::string range = RatioRange(r_ratio);
    std::printf("%10s %6d %14.1f %18.1f %8.3f %14s %12.2f %12.1f %12.2f %12.1f %8.1f %8.1f %14.1f "
                "%10.3f %12.2f %14.1f %8.3f %12.2f %8.2f\n",
                Human(size).c_str(), n, g_tidal, g_peer, g_tidal / g_peer, range.c_str(), issue_us,
                wait_us,
                pissue_us, psync_us, events, queries, g_batch, g_batch / g_peer, bissue_us,
                g_tidal_b, g_tidal_b / g_peer, issue_b_us,
                static_cast<double>(batch_calls) / batches);
    std::fflush(stdout);
    rows.push_back({{"bytes", size}, {"iters", n}, {"trials", trials}, {"window", w},
                    {"tidal_GBps", g_tidal}, {"memcpy_peer_GBps", g_peer},
                    {"ratio", g_tidal / g_peer}, {"trial_ratios", r_ratio},
                    {"batch_copies_default", batched_default},
                    {"tidal_issue_us_per_request", issue_us}, {"tidal_wait_us_per_batch", wait_us},
                    {"peer_issue_us_per_copy", pissue_us}, {"peer_sync_us_per_window", psync_us},
                    {"events_per_batch", events}, {"event_queries_per_batch", queries},
                    {"memcpy_batch_GBps", g_batch}, {"batch_over_peer", g_batch / g_peer},
                    {"batch_issue_us_per_copy", bissue_us},
                    {"tidal_flipped_GBps", g_tidal_b}, {"tidal_flipped_ratio", g_tidal_b / g_peer},
                    {"tidal_flipped_issue_us_per_request", issue_b_us},
                    {"tidal_flipped_calls_per_batch", static_cast<double>(batch_calls) / batches}});
  }
  // The last engine write moved the pattern: check it byte for byte.
  std::vector<uint8_t> a(max), b(max);
  f.CopyOut(a.data(), src, max);
  f.CopyOut(b.data(), dst, max);
  const bool same = std::memcmp(a.data(), b.data(), max) == 0;
  std::printf("# every transfer COMPLETED: %s; destination equals source: %s\n",
              all_ok ? "yes" : "NO", same ? "yes" : "NO");
  cudaStreamDestroy(stream);
  if (vm.count("json")) {
    nlohmann::json j = {{"bench", "transfer"}, {"slice_bytes", o.engine.slice_bytes},
                        {"window", window},
                        {"spin_us", vm["spin-us"].as<double>()},
                        {"caller_polling", CallerPoll(vm)},
                        {"caller_groups", f.cuda_transport(0).counters().caller_groups},
                        {"batch_ramp", f.cuda_transport(0).batch_ramp()},
                        {"all_completed", all_ok}, {"verified", same}, {"rows", rows}};
    std::ofstream(vm["json"].as<std::string>()) << j.dump(2) << "\n";
  }
  return all_ok && same ? 0 : 1;
}

// The fixed cost of each hand-off of the chunk path, small payloads so that the data
// time is negligible: a reducer copy seen finished on the event loop, an engine WRITE
// GPU0 -> GPU1 waited for, and the bare CUDA calls beside them.
// GPU-local bandwidth of the reducer's kernels on GPU0 (what a fold, a staging copy and the
// commit's output copy cost), beside cudaMemcpyAsync device-to-device, for several grid
// sizes (--blocks-per-sm values): GB/s counting bytes read plus written.
int Kernels(const po::variables_map& vm) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) {
    std::cerr << "kernels: no CUDA device\n";
    return 77;
  }
  CUDA_OK(cudaSetDevice(0));
  const tidal::Location loc = tidal::Location::Cuda(0);
  auto& red = tidal::coll::CudaReducer::Default();
  const uint64_t max = vm["max"].as<uint64_t>();
  uint8_t *a = nullptr, *b = nullptr, *c = nullptr;
  CUDA_OK(cudaMalloc(&a, max));
  CUDA_OK(cudaMalloc(&b, max));
  CUDA_OK(cudaMalloc(&c, max));
  CUDA_OK(cudaMemset(a, 0, max));
  CUDA_OK(cudaMemset(b, 0, max));
  cudaStream_t st;
  CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  // Each: k calls, the last one waited for (the reducer's calls are ordered on its stream).
  auto time = [&](int k, auto&& call) {
    std::atomic<int> left{0};
    auto run = [&](int n) {
      left = n;
      for (int i = 0; i < n; ++i) call(&left);
      while (left.load() > 0) {
      }
    };
    run(2);
    double t0 = Now();
    run(k);
    return (Now() - t0) / k;
  };
  auto done = [](std::atomic<int>* left) {
    return [left](tidal::Status s) {
      if (!s.ok()) std::fprintf(stderr, "kernel: %s\n", s.ToString().c_str());
      --*left;
    };
  };
  nlohmann::json rows = nlohmann::json::array();
  std::printf("# reducer kernels on GPU0, GB/s counting bytes read + written\n%10s %6s %12s %12s %12s\n",
              "size", "bl/SM", "copy", "fold f32", "memcpyD2D");
  std::vector<unsigned> bps = {4, 8, 16, 32};
  for (uint64_t size : Sizes(vm["min"].as<uint64_t>(), max, vm["step"].as<uint64_t>())) {
    const int k = Iters(size, vm["iters"].as<int>());
    for (unsigned bl : bps) {
      tidal::coll::CudaReducer::SetBlocksPerSm(bl);
      const double t_copy = time(k, [&](std::atomic<int>* l) { red.CopyAsync(b, a, size, loc, done(l)); });
      const double t_fold = time(k, [&](std::atomic<int>* l) {
        red.FoldIntoAsync(c, a, b, size / 4, tidal::coll::DataType::kF32, tidal::coll::ReduceOp::kSum,
                          loc, done(l));
      });
      double t_d2d = 0;
      if (bl == bps.front()) {
        t_d2d = time(k, [&](std::atomic<int>* l) {
          CUDA_OK(cudaMemcpyAsync(b, a, size, cudaMemcpyDeviceToDevice, st));
          CUDA_OK(cudaStreamSynchronize(st));
          --*l;
        });
      }
      const double g_copy = 2.0 * size / t_copy / 1e9, g_fold = 3.0 * size / t_fold / 1e9,
                   g_d2d = t_d2d > 0 ? 2.0 * size / t_d2d / 1e9 : 0;
      std::printf("%10s %6u %12.1f %12.1f %12.1f\n", Human(size).c_str(), bl, g_copy, g_fold, g_d2d);
      rows.push_back({{"bytes", size}, {"blocks_per_sm", bl}, {"copy_GBps", g_copy},
                      {"fold_f32_GBps", g_fold}, {"memcpy_d2d_GBps", g_d2d}});
    }
  }
  tidal::coll::CudaReducer::SetBlocksPerSm(8);
  cudaStreamDestroy(st);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  if (vm.count("json")) {
    std::ofstream(vm["json"].as<std::string>()) << nlohmann::json({{"bench", "kernels"}, {"rows", rows}}).dump(2) << "\n";
  }
  return 0;
}

int Hops(const po::variables_map& vm) {
  CudaFabricOptions o;
  o.nodes = 2;
  o.contract_checker = false;
  o.engine.transfer_timeout_ns = 60'000'000'000ULL;
  auto made = CudaFabric::Make(o);
  if (!made.ok()) {
    std::cerr << "cuda fabric: " << made.status().ToString() << "\n";
    return 1;
  }
  CudaFabric& f = **made;
  ApplyWaits(f, vm);
  if (f.device_count() < 2) {
    std::cerr << "hops needs 2 GPUs\n";
    return 1;
  }
  const uint64_t bytes = vm["hop-bytes"].as<uint64_t>();
  const int k = vm["hop-iters"].as<int>();
  void* a0 = f.Allocate(0, bytes, tidal::Location::Cuda(0));
  void* b0 = f.Allocate(0, bytes, tidal::Location::Cuda(0));
  void* b1 = f.Allocate(1, bytes, tidal::Location::Cuda(1));
  auto k0 = f.Run(f.engine(0).RegisterMemory(a0, bytes, tidal::Location::Cuda(0)));
  auto k1 = f.Run(f.engine(1).RegisterMemory(b1, bytes, tidal::Location::Cuda(1)));
  auto seg = f.Run(f.engine(0).OpenSegment(CudaFabric::NodeName(1)));
  if (!k0.ok() || !k1.ok() || !seg.ok()) {
    std::cerr << "setup failed\n";
    return 1;
  }
  tidal::Env& env = f.env(0);
  auto per = [&](auto&& body) {
    for (int i = 0; i < 20; ++i) body();
    const double t0 = Now();
    for (int i = 0; i < k; ++i) body();
    return (Now() - t0) / k * 1e6;
  };
  bool ok = true;
  // A reducer copy, its completion posted to the loop, the loop seeing it.
  const double reducer_us = per([&] {
    bool done = false;
    tidal::coll::CudaReducer::Default().CopyAsync(
        b0, a0, bytes, tidal::Location::Cuda(0),
        [&env, &done, &ok](tidal::Status st) {
          if (!st.ok()) ok = false;
          env.Post([&done] { done = true; });
        });
    env.RunUntil([&] { return done; });
  });
  // The same kernel waited for with cudaStreamSynchronize.
  cudaStream_t s0;
  CUDA_OK(cudaSetDevice(0));
  CUDA_OK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
  const double kernel_sync_us = per([&] {
    std::atomic<bool> done{false};
    tidal::coll::CudaReducer::Default().CopyAsync(b0, a0, bytes, tidal::Location::Cuda(0),
                                                   [&done](tidal::Status) { done.store(true); });
    while (!done.load()) {
    }
  });
  tidal::TransferRequest r{tidal::TransferOp::kWrite, reinterpret_cast<uint64_t>(a0), bytes, *seg,
                           reinterpret_cast<uint64_t>(b1)};
  const double write_us = per([&] {
    auto st = f.Run(f.engine(0).TransferSync(std::span(&r, 1)));
    if (st.empty() || st[0].state != tidal::TransferState::COMPLETED) ok = false;
  });
  const double peer_us = per([&] {
    CUDA_OK(cudaMemcpyPeerAsync(b1, 1, a0, 0, bytes, s0));
    CUDA_OK(cudaStreamSynchronize(s0));
  });
  // What issuing costs the calling thread (no waiting): the executor pays this per chunk.
  auto issue = [&](auto&& body) {
    CUDA_OK(cudaDeviceSynchronize());
    const double t0 = Now();
    for (int i = 0; i < k; ++i) body();
    const double us = (Now() - t0) / k * 1e6;
    CUDA_OK(cudaSetDevice(0));
    CUDA_OK(cudaDeviceSynchronize());
    return us;
  };
  std::atomic<int> left{0};
  const double issue_copy_us = issue([&] {
    left.fetch_add(1);
    tidal::coll::CudaReducer::Default().CopyAsync(b0, a0, bytes, tidal::Location::Cuda(0),
                                                   [&left](tidal::Status) { left.fetch_sub(1); });
  });
  while (left.load() != 0) {
  }
  const double issue_peer_us = issue([&] {
    CUDA_OK(cudaMemcpyPeerAsync(b1, 1, a0, 0, bytes, s0));
  });
  std::printf("# hand-off costs, %s payloads, %d iterations each, spin %.0f us, poll gap %.1f "
              "us, completion %s\n",
              Human(bytes).c_str(), k, vm["spin-us"].as<double>(), vm["poll-gap-us"].as<double>(),
              vm["completion"].as<std::string>().c_str());
  std::printf("%-58s %10.2f us\n", "reducer CopyAsync -> done posted -> event loop runs it",
              reducer_us);
  std::printf("%-58s %10.2f us\n", "reducer CopyAsync -> done (spinning caller, no loop)",
              kernel_sync_us);
  std::printf("%-58s %10.2f us\n", "engine WRITE GPU0->GPU1, TransferSync on the loop", write_us);
  std::printf("%-58s %10.2f us\n", "cudaMemcpyPeerAsync + cudaStreamSynchronize", peer_us);
  std::printf("%-58s %10.2f us\n", "issue only: reducer CopyAsync (kernel + completion)",
              issue_copy_us);
  std::printf("%-58s %10.2f us\n", "issue only: cudaMemcpyPeerAsync", issue_peer_us);
  std::printf("# all completed: %s\n", ok ? "yes" : "NO");
  cudaStreamDestroy(s0);
  if (vm.count("json")) {
    nlohmann::json j = {{"bench", "hops"}, {"bytes", bytes}, {"iters", k},
                        {"spin_us", vm["spin-us"].as<double>()},
                        {"completion", vm["completion"].as<std::string>()},
                        {"reducer_copy_to_loop_us", reducer_us},
                        {"reducer_copy_spin_us", kernel_sync_us},
                        {"engine_write_us", write_us}, {"memcpy_peer_sync_us", peer_us},
                        {"issue_reducer_copy_us", issue_copy_us},
                        {"issue_memcpy_peer_us", issue_peer_us}};
    std::ofstream(vm["json"].as<std::string>()) << j.dump(2) << "\n";
  }
  return ok ? 0 : 1;
}

#if TIDAL_BENCH_HAVE_NCCL
#define NCCL_OK(x)                                                                   \
  do {                                                                               \
    ncclResult_t r_ = (x);                                                           \
    if (r_ != ncclSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, ncclGetErrorString(r_)); \
      std::exit(2);                                                                  \
    }                                                                                \
  } while (0)

int Nccl(const po::variables_map& vm) {
  int n = 0;
  CUDA_OK(cudaGetDeviceCount(&n));
  const uint64_t min = vm["min"].as<uint64_t>(), max = vm["max"].as<uint64_t>();
  const int iters = vm["iters"].as<int>();
  std::vector<ncclComm_t> comms(n);
  std::vector<int> devs(n);
  for (int i = 0; i < n; ++i) devs[i] = i;
  NCCL_OK(ncclCommInitAll(comms.data(), n, devs.data()));
  int version = 0;
  ncclGetVersion(&version);
  std::vector<cudaStream_t> streams(n);
  std::vector<float*> sendbuf(n), recvbuf(n);
  for (int i = 0; i < n; ++i) {
    CUDA_OK(cudaSetDevice(i));
    CUDA_OK(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc(&sendbuf[i], max));
    CUDA_OK(cudaMalloc(&recvbuf[i], max));
    CUDA_OK(cudaMemset(sendbuf[i], 0, max));
  }
  struct Coll {
    const char* name;
    double bus;  // busbw / algbw
  };
  const double dn = n;
  const Coll colls[] = {{"allreduce", 2 * (dn - 1) / dn}, {"allgather", (dn - 1) / dn},
                        {"reduce_scatter", (dn - 1) / dn}, {"broadcast", 1.0},
                        {"alltoall", (dn - 1) / dn}};
  nlohmann::json out = nlohmann::json::array();
  for (const Coll& c : colls) {
    std::printf("# nccl %s, %d GPUs, float, out of place (NCCL %d)\n", c.name, n, version);
    std::printf("%10s %6s %12s %12s %12s\n", "size", "iters", "time(us)", "algbw GB/s",
                "busbw GB/s");
    nlohmann::json rows = nlohmann::json::array();
    for (uint64_t size : Sizes(min, max, vm["step"].as<uint64_t>())) {
      // `size` is the per-rank buffer (nccl-tests' size column): count = size / 4 floats.
      const size_t count = size / sizeof(float);
      auto launch = [&] {
        NCCL_OK(ncclGroupStart());
        for (int i = 0; i < n; ++i) {
          const std::string name = c.name;
          if (name == "allreduce") {
            NCCL_OK(ncclAllReduce(sendbuf[i], recvbuf[i], count, ncclFloat, ncclSum, comms[i], streams[i]));
          } else if (name == "allgather") {
            NCCL_OK(ncclAllGather(sendbuf[i], recvbuf[i], count / n, ncclFloat, comms[i], streams[i]));
          } else if (name == "reduce_scatter") {
            NCCL_OK(ncclReduceScatter(sendbuf[i], recvbuf[i], count / n, ncclFloat, ncclSum, comms[i], streams[i]));
          } else if (name == "broadcast") {
            NCCL_OK(ncclBroadcast(sendbuf[i], recvbuf[i], count, ncclFloat, 0, comms[i], streams[i]));
          } else {
            const size_t per = count / n;
            for (int p = 0; p < n; ++p) {
              NCCL_OK(ncclSend(sendbuf[i] + p * per, per, ncclFloat, p, comms[i], streams[i]));
              NCCL_OK(ncclRecv(recvbuf[i] + p * per, per, ncclFloat, p, comms[i], streams[i]));
            }
          }
        }
        NCCL_OK(ncclGroupEnd());
      };
      auto sync = [&] {
        for (int i = 0; i < n; ++i) {
          CUDA_OK(cudaSetDevice(i));
          CUDA_OK(cudaStreamSynchronize(streams[i]));
        }
      };
      const int k = Iters(size, iters);
      for (int w = 0; w < 3; ++w) launch();
      sync();
      double t0 = Now();
      for (int i = 0; i < k; ++i) launch();
      sync();
      const double us = (Now() - t0) / k * 1e6;
      const double algbw = static_cast<double>(size) / (us * 1e-6) / 1e9;
      std::printf("%10s %6d %12.1f %12.1f %12.1f\n", Human(size).c_str(), k, us, algbw,
                  algbw * c.bus);
      std::fflush(stdout);
      rows.push_back({{"bytes", size}, {"iters", k}, {"time_us", us}, {"algbw_GBps", algbw},
                      {"busbw_GBps", algbw * c.bus}});
    }
    out.push_back({{"collective", c.name}, {"gpus", n}, {"nccl_version", version}, {"rows", rows}});
  }
  for (int i = 0; i < n; ++i) {
    cudaSetDevice(i);
    cudaFree(sendbuf[i]);
    cudaFree(recvbuf[i]);
    cudaStreamDestroy(streams[i]);
    ncclCommDestroy(comms[i]);
  }
  if (vm.count("json")) {
    std::ofstream(vm["json"].as<std::string>()) << nlohmann::json({{"bench", "nccl"}, {"results", out}}).dump(2) << "\n";
  }
  return 0;
}
#endif

// --- coll: tidal's ProcessGroup on GPU tensors beside NCCL ------------------------------

namespace coll = tidal::coll;

// The five collectives of the table, with nccl-tests' bus factors and buffer shapes: `size`
// is the per-rank buffer of nccl-tests' size column (allgather: the output, reduce_scatter:
// the input; each rank's block is size / n).
struct CollKind {
  const char* name;
  coll::OpType op;
};
constexpr CollKind kCollKinds[] = {{"allreduce", coll::OpType::kAllReduce},
                                   {"allgather", coll::OpType::kAllGather},
                                   {"reduce_scatter", coll::OpType::kReduceScatter},
                                   {"broadcast", coll::OpType::kBroadcast},
                                   {"alltoall", coll::OpType::kAllToAll}};

#if TIDAL_BENCH_HAVE_NCCL
// NCCL over every rank's GPU (one communicator per GPU, one process), float, sum, root 0.
class NcclRunner {
 public:
  explicit NcclRunner(int n, uint64_t max) : n_(n), comms_(n), streams_(n), send_(n), recv_(n) {
    std::vector<int> devs(n);
    for (int i = 0; i < n; ++i) devs[i] = i;
    NCCL_OK(ncclCommInitAll(comms_.data(), n, devs.data()));
    ncclGetVersion(&version_);
    for (int i = 0; i < n; ++i) {
      CUDA_OK(cudaSetDevice(i));
      CUDA_OK(cudaStreamCreateWithFlags(&streams_[i], cudaStreamNonBlocking));
      CUDA_OK(cudaMalloc(&send_[i], max));
      CUDA_OK(cudaMalloc(&recv_[i], max));
      CUDA_OK(cudaMemset(send_[i], 0, max));
    }
  }
  ~NcclRunner() {
    for (int i = 0; i < n_; ++i) {
      cudaSetDevice(i);
      cudaFree(send_[i]);
      cudaFree(recv_[i]);
      cudaStreamDestroy(streams_[i]);
      ncclCommDestroy(comms_[i]);
    }
  }
  int version() const { return version_; }
  // Mean seconds per op over k timed launches after 3 warm-ups.
  double Time(coll::OpType op, uint64_t size, int k) {
    const size_t count = size / sizeof(float);
    auto launch = [&] {
      NCCL_OK(ncclGroupStart());
      for (int i = 0; i < n_; ++i) {
        switch (op) {
          case coll::OpType::kAllReduce:
            NCCL_OK(ncclAllReduce(send_[i], recv_[i], count, ncclFloat, ncclSum, comms_[i], streams_[i]));
            break;
          case coll::OpType::kAllGather:
            NCCL_OK(ncclAllGather(send_[i], recv_[i], count / n_, ncclFloat, comms_[i], streams_[i]));
            break;
          case coll::OpType::kReduceScatter:
            NCCL_OK(ncclReduceScatter(send_[i], recv_[i], count / n_, ncclFloat, ncclSum, comms_[i], streams_[i]));
            break;
          case coll::OpType::kBroadcast:
            NCCL_OK(ncclBroadcast(send_[i], recv_[i], count, ncclFloat, 0, comms_[i], streams_[i]));
            break;
          default: {
            const size_t per = count / n_;
            for (int p = 0; p < n_; ++p) {
              NCCL_OK(ncclSend(send_[i] + p * per, per, ncclFloat, p, comms_[i], streams_[i]));
              NCCL_OK(ncclRecv(recv_[i] + p * per, per, ncclFloat, p, comms_[i], streams_[i]));
            }
          }
        }
      }
      NCCL_OK(ncclGroupEnd());
    };
    auto sync = [&] {
      for (int i = 0; i < n_; ++i) {
        CUDA_OK(cudaSetDevice(i));
        CUDA_OK(cudaStreamSynchronize(streams_[i]));
      }
    };
    for (int w = 0; w < 3; ++w) launch();
    sync();
    double t0 = Now();
    for (int i = 0; i < k; ++i) launch();
    sync();
    return (Now() - t0) / k;
  }

 private:
  int n_;
  int version_ = 0;
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> streams_;
  std::vector<float*> send_, recv_;
};
#endif

// A cudaMemcpy from pageable memory may return before its DMA landed; the group's streams
// do not wait for it: the inputs are made complete before an op reads them.
void SyncDevices(int devices) {
  for (int d = 0; d < devices; ++d) {
    CUDA_OK(cudaSetDevice(d));
    CUDA_OK(cudaDeviceSynchronize());
  }
}

// --loops rank: the ranks of one process, each with an event loop of its own driven by a
// thread of its own (as ranks in processes of their own are), over CudaTransport: what
// CudaFabric builds, but a RealEnv per rank, a messenger hub that posts each message to the
// receiver's loop, and a metadata store behind a mutex.
class LockedStore final : public tidal::MetadataStore {
 public:
  tidal::Task<tidal::Status> Put(std::string key, std::string value) override {
    std::lock_guard<std::mutex> l(mu_);
    kv_[std::move(key)] = std::move(value);
    co_return tidal::Status();
  }
  tidal::Task<tidal::Result<std::string>> Get(std::string key) override {
    std::unique_lock<std::mutex> l(mu_);
    auto it = kv_.find(key);
    if (it == kv_.end()) co_return tidal::Status(tidal::ErrorCode::OBJECT_NOT_FOUND, "no key " + key);
    std::string v = it->second;
    l.unlock();
    co_return v;
  }
  tidal::Task<tidal::Status> Delete(std::string key) override {
    std::lock_guard<std::mutex> l(mu_);
    if (kv_.erase(key) == 0) co_return tidal::Status(tidal::ErrorCode::OBJECT_NOT_FOUND, "no key " + key);
    co_return tidal::Status();
  }
  tidal::Task<tidal::Result<tidal::KeyValues>> List(std::string prefix) override {
    std::unique_lock<std::mutex> l(mu_);
    tidal::KeyValues out;
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.starts_with(prefix); ++it) {
      out.emplace_back(it->first, it->second);
    }
    l.unlock();
    co_return out;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> kv_;
};

struct ThreadHub {
  std::mutex mu;
  std::map<std::string, std::pair<tidal::Env*, tidal::Messenger::Receiver>, std::less<>> nodes;
};

class ThreadMessenger final : public tidal::Messenger {
 public:
  ThreadMessenger(std::shared_ptr<ThreadHub> hub, std::string name, tidal::Env* env)
      : hub_(std::move(hub)), name_(std::move(name)) {
    std::lock_guard<std::mutex> l(hub_->mu);
    hub_->nodes[name_] = {env, Receiver()};
  }
  ~ThreadMessenger() override {
    std::lock_guard<std::mutex> l(hub_->mu);
    hub_->nodes.erase(name_);
  }
  std::string_view LocalName() const override { return name_; }
  tidal::Status Send(std::string_view to, std::string payload) override {
    tidal::Env* env = nullptr;
    {
      std::lock_guard<std::mutex> l(hub_->mu);
      auto it = hub_->nodes.find(to);
      if (it == hub_->nodes.end()) {
        return tidal::Status(tidal::ErrorCode::SEGMENT_NOT_FOUND,
                             "no messenger endpoint '" + std::string(to) + "'");
      }
      env = it->second.first;
    }
    // Posted to the receiver's loop: messages of one pair arrive once and in order.
    env->Post([hub = hub_, to = std::string(to), from = name_, payload = std::move(payload)]() mutable {
      Receiver rx;
      {
        std::lock_guard<std::mutex> l(hub->mu);
        auto it = hub->nodes.find(to);
        if (it != hub->nodes.end()) rx = it->second.second;
      }
      if (rx) rx(from, std::move(payload));
    });
    return tidal::Status();
  }
  void SetReceiver(Receiver receiver) override {
    std::lock_guard<std::mutex> l(hub_->mu);
    hub_->nodes[name_].second = std::move(receiver);
  }

 private:
  std::shared_ptr<ThreadHub> hub_;
  std::string name_;
};

struct RankLoops {
  LockedStore store;
  std::shared_ptr<ThreadHub> hub = std::make_shared<ThreadHub>();
  std::vector<std::unique_ptr<tidal::backends::RealEnv>> envs;
  std::vector<tidal::backends::cuda::CudaTransport*> transports;  // owned by the engines
  std::vector<std::unique_ptr<tidal::TransferEngine>> engines;
  std::vector<std::unique_ptr<ThreadMessenger>> messengers;
  std::vector<void*> allocations;
  ~RankLoops() {
    for (auto& e : envs) e->DestroyRoots();
    engines.clear();
    messengers.clear();
    for (auto& e : envs) e->RemovePoster();
    for (void* p : allocations) cudaFree(p);
  }
};

// One ProcessGroup per rank, rank r on GPU r % D, everything on the GPUs: the nodes of a
// CudaFabric (one event loop for every rank), or with --loops rank, RankLoops.
struct TidalGroups {
  std::unique_ptr<CudaFabric> fabric;
  std::unique_ptr<RankLoops> loops;  // destroyed after the groups below
  std::vector<std::unique_ptr<coll::ProcessGroup>> pg;
  std::vector<uint8_t*> in, out;  // per rank: input and output tensors of `max` bytes
  int n = 0;
  // --direct-outputs: AllReduce(output, input) and Broadcast(output, input, root), as
  // NCCL's; else in place on `out`.
  bool out_of_place = false;
  int devices = 0;

  tidal::Env& env(int r) { return loops ? *loops->envs[r] : fabric->env(r); }
  void CopyIn(void* dst, const void* src, uint64_t bytes) {
    if (fabric) return fabric->CopyIn(dst, src, bytes);
    CUDA_OK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  }
  void CopyOut(void* dst, const void* src, uint64_t bytes) {
    if (fabric) return fabric->CopyOut(dst, src, bytes);
    CUDA_OK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  }

  // Runs body(r) for every rank listed, each as its own coroutine, until all returned.
  // With RankLoops every rank's loop runs on a thread of its own until all are done.
  void RunRanks(const std::vector<int>& ranks, std::function<tidal::Task<void>(int)> body) {
    if (!loops) {
      auto left = std::make_shared<size_t>(ranks.size());
      for (int r : ranks) {
        tidal::Spawn(fabric->env(0), [](std::function<tidal::Task<void>(int)> b, int r,
                                        std::shared_ptr<size_t> left) -> tidal::Task<void> {
          co_await b(r);
          --*left;
        }(body, r, left));
      }
      fabric->env(0).RunUntil([&] { return *left == 0; });
      return;
    }
    std::atomic<size_t> left{ranks.size()};
    RankLoops* l = loops.get();
    for (int r : ranks) {
      tidal::Spawn(*l->envs[r], [](std::function<tidal::Task<void>(int)> b, int r,
                                   std::atomic<size_t>* left, RankLoops* l) -> tidal::Task<void> {
        co_await b(r);
        if (left->fetch_sub(1) == 1) {
          for (auto& e : l->envs) e->Post([] {});  // wake every loop: all are done
        }
      }(body, r, &left, l));
    }
    std::vector<std::thread> threads;
    for (size_t r = 1; r < l->envs.size(); ++r) {
      threads.emplace_back([&, r] { l->envs[r]->RunUntil([&] { return left.load() == 0; }); });
    }
    l->envs[0]->RunUntil([&] { return left.load() == 0; });
    for (auto& t : threads) t.join();
  }
  std::vector<int> All() const {
    std::vector<int> v(n);
    for (int r = 0; r < n; ++r) v[r] = r;
    return v;
  }
};

tidal::Task<void> StartOneEngine(tidal::TransferEngine& e, tidal::Status* st, bool* done) {
  *st = co_await e.Start();
  *done = true;
}

// RankLoops for n ranks (one RealEnv, CudaTransport, engine and messenger each), engines
// started, waits applied as ApplyWaits does; nullptr (with the reason printed) on failure.
std::unique_ptr<RankLoops> MakeRankLoops(int n, uint64_t slice, const po::variables_map& vm) {
  auto l = std::make_unique<RankLoops>();
  tidal::TransferEngineOptions eo;
  eo.slice_bytes = slice;
  eo.transfer_timeout_ns = 60'000'000'000ULL;
  const uint64_t spin_ns = static_cast<uint64_t>(vm["spin-us"].as<double>() * 1e3);
  const uint64_t gap_ns = static_cast<uint64_t>(vm["poll-gap-us"].as<double>() * 1e3);
  for (int r = 0; r < n; ++r) {
    l->envs.push_back(std::make_unique<tidal::backends::RealEnv>("rank" + std::to_string(r)));
    l->envs.back()->AddPoster();  // the transport's progress thread and the other ranks post
    l->envs.back()->SetSpinNs(spin_ns);
    AddReducerPoller(*l->envs.back(), vm);
    auto t = std::make_unique<tidal::backends::cuda::CudaTransport>();
    t->SetCallerPolling(CallerPoll(vm));
    t->SetBatchRamp(vm["batch-ramp"].as<int>() != 0);
    l->transports.push_back(t.get());
    l->engines.push_back(std::make_unique<tidal::TransferEngine>(
        *l->envs.back(), std::move(t), l->store, CudaFabric::NodeName(r), eo));
    l->messengers.push_back(
        std::make_unique<ThreadMessenger>(l->hub, CudaFabric::NodeName(r), l->envs.back().get()));
  }
  for (int r = 0; r < n; ++r) {
    tidal::Status st;
    bool done = false;
    tidal::Spawn(*l->envs[r], StartOneEngine(*l->engines[r], &st, &done));
    l->envs[r]->RunUntil([&] { return done; });
    if (!done || !st.ok()) {
      std::cerr << "rank " << r << " engine Start: " << (done ? st.ToString() : "never finished") << "\n";
      return nullptr;
    }
    l->transports[r]->SetIdleSpinNs(spin_ns);
    l->transports[r]->SetPollGapNs(gap_ns);
    l->transports[r]->SetEventBytes(vm["event-bytes"].as<uint64_t>());
    l->transports[r]->SetStreamsPerPeer(vm["streams-per-peer"].as<uint32_t>());
  }
  tidal::coll::CudaReducer::SetCompletion(vm["completion"].as<std::string>() == "hostfunc"
                                              ? tidal::coll::CudaReducer::Completion::kHostFunc
                                              : tidal::coll::CudaReducer::Completion::kPoll,
                                          spin_ns, gap_ns);
  return l;
}

// `shared_loop`: the ranks on one CudaFabric (one event loop) whatever --loops says.
std::unique_ptr<TidalGroups> MakeGroups(int n, uint64_t max, coll::ProcessGroupOptions pg,
                                        uint64_t slice, const po::variables_map& vm,
                                        bool shared_loop = false) {
  auto g = std::make_unique<TidalGroups>();
  g->n = n;
  g->out_of_place = pg.direct_outputs;
  if (!shared_loop && vm["loops"].as<std::string>() == "rank") {
    g->loops = MakeRankLoops(n, slice, vm);
    if (!g->loops) return nullptr;
    CUDA_OK(cudaGetDeviceCount(&g->devices));
  } else {
    CudaFabricOptions o;
    o.nodes = static_cast<size_t>(n);
    o.contract_checker = false;
    o.engine.slice_bytes = slice;
    o.engine.transfer_timeout_ns = 60'000'000'000ULL;
    auto made = CudaFabric::Make(o);
    if (!made.ok()) {
      std::cerr << "cuda fabric: " << made.status().ToString() << "\n";
      return nullptr;
    }
    g->fabric = std::move(*made);
    ApplyWaits(*g->fabric, vm);
    g->devices = g->fabric->device_count();
  }
  const int devices = g->devices;
  pg.slot_location_of = [devices](int r) { return tidal::Location::Cuda(r % devices); };
  pg.reducer = &coll::CudaReducer::Default();
  pg.allocator = &coll::CudaBufferAllocator::Default();
  for (int r = 0; r < n; ++r) {
    const tidal::Location loc = tidal::Location::Cuda(r % devices);
    if (g->fabric) {
      g->pg.push_back(std::make_unique<coll::ProcessGroup>(
          r, n, g->fabric->engine(r), g->fabric->messenger(r), g->fabric->metadata(), pg));
      g->in.push_back(static_cast<uint8_t*>(g->fabric->Allocate(r, max, loc)));
      g->out.push_back(static_cast<uint8_t*>(g->fabric->Allocate(r, max, loc)));
    } else {
      g->pg.push_back(std::make_unique<coll::ProcessGroup>(
          r, n, *g->loops->engines[r], *g->loops->messengers[r], g->loops->store, pg));
      for (auto* v : {&g->in, &g->out}) {
        void* p = nullptr;
        CUDA_OK(cudaSetDevice(loc.device));
        CUDA_OK(cudaMalloc(&p, max));
        CUDA_OK(cudaMemset(p, 0, max));
        g->loops->allocations.push_back(p);
        v->push_back(static_cast<uint8_t*>(p));
      }
    }
  }
  SyncDevices(devices);
  std::vector<tidal::Status> started(n);
  g->RunRanks(g->All(), [&](int r) -> tidal::Task<void> { started[r] = co_await g->pg[r]->Start(); });
  for (int r = 0; r < n; ++r) {
    if (!started[r].ok()) {
      std::cerr << "rank " << r << " Start: " << started[r].ToString() << "\n";
      return nullptr;
    }
  }
  if (vm.count("register")) {
    // Each rank's input and output tensors registered with its group (RegisterBuffer):
    // chunks are WRITTEN from the tensors without a staging copy.
    std::vector<tidal::Status> reg(n);
    g->RunRanks(g->All(), [&](int r) -> tidal::Task<void> {
      reg[r] = co_await g->pg[r]->RegisterBuffer(g->in[r], max);
      if (reg[r].ok()) reg[r] = co_await g->pg[r]->RegisterBuffer(g->out[r], max);
    });
    for (int r = 0; r < n; ++r) {
      if (!reg[r].ok()) {
        std::cerr << "rank " << r << " RegisterBuffer: " << reg[r].ToString() << "\n";
        return nullptr;
      }
    }
  }
  return g;
}

// Issues one op of the table on rank r over `size` bytes (float, sum, root 0).
std::shared_ptr<coll::Work> IssueOp(TidalGroups& g, int r, coll::OpType op, uint64_t size) {
  const tidal::Location loc = tidal::Location::Cuda(r % g.devices);
  const uint64_t count = size / sizeof(float);
  const uint64_t block = count / static_cast<uint64_t>(g.n);
  auto t = [&](uint8_t* p, uint64_t c) { return coll::Tensor{p, coll::DataType::kF32, c, loc}; };
  coll::ProcessGroup& pg = *g.pg[r];
  switch (op) {
    case coll::OpType::kAllReduce:
      if (g.out_of_place) {
        return pg.AllReduce(t(g.out[r], count), t(g.in[r], count), coll::ReduceOp::kSum);
      }
      return pg.AllReduce(t(g.out[r], count), coll::ReduceOp::kSum);
    case coll::OpType::kAllGather: return pg.AllGather(t(g.out[r], block * g.n), t(g.in[r], block));
    case coll::OpType::kReduceScatter:
      return pg.ReduceScatter(t(g.out[r], block), t(g.in[r], block * g.n), coll::ReduceOp::kSum);
    case coll::OpType::kBroadcast:
      if (g.out_of_place) return pg.Broadcast(t(g.out[r], count), t(g.in[r], count), 0);
      return pg.Broadcast(t(g.out[r], count), 0);
    default: return pg.AllToAll(t(g.out[r], block * g.n), t(g.in[r], block * g.n));
  }
}


// Fills the inputs with rank-dependent small integers, runs the op once and counts wrong
// floats in every rank's output (the expected values are exact in float).
uint64_t Verify(TidalGroups& g, coll::OpType op, uint64_t size, bool* failed) {
  const uint64_t count = size / sizeof(float);
  const uint64_t block = count / static_cast<uint64_t>(g.n);
  auto value = [](int r, uint64_t i) { return static_cast<float>((r + 1) * 1000 + (i % 97)); };
  for (int r = 0; r < g.n; ++r) {
    std::vector<float> v(count);
    for (uint64_t i = 0; i < count; ++i) v[i] = value(r, i);
    g.CopyIn(g.in[r], v.data(), size);
    if (g.out_of_place) {  // every output byte must be written: start from other values
      for (uint64_t i = 0; i < count; ++i) v[i] = -value(r + 50, i);
    }
    g.CopyIn(g.out[r], v.data(), size);  // the in-place ops' input
  }
  SyncDevices(g.devices);
  std::vector<tidal::Status> st(g.n);
  g.RunRanks(g.All(), [&](int r) -> tidal::Task<void> { st[r] = co_await IssueOp(g, r, op, size)->Wait(); });
  uint64_t wrong = 0;
  for (int r = 0; r < g.n; ++r) {
    if (!st[r].ok()) {
      std::cerr << "rank " << r << ": " << st[r].ToString() << "\n";
      *failed = true;
    }
    std::vector<float> got(count);
    g.CopyOut(got.data(), g.out[r], size);
    uint64_t n_out = count;
    for (uint64_t i = 0; i < n_out; ++i) {
      float want = 0;
      switch (op) {
        case coll::OpType::kAllReduce:
          for (int q = 0; q < g.n; ++q) want += value(q, i);
          break;
        case coll::OpType::kAllGather:
          if (i >= block * g.n) continue;
          want = value(static_cast<int>(i / block), i % block);
          break;
        case coll::OpType::kReduceScatter:
          if (i >= block) continue;
          for (int q = 0; q < g.n; ++q) want += value(q, r * block + i);
          break;
        case coll::OpType::kBroadcast:
          want = value(0, i);
          break;
        default:  // alltoall: block q of my output = block r of rank q's input
          if (i >= block * g.n) continue;
          want = value(static_cast<int>(i / block), r * block + i % block);
          break;
      }
      if (got[i] != want) ++wrong;
    }
  }
  return wrong;
}

// Mean seconds per op. Queued (the default): each rank issues its k ops at once and then
// waits for them, as NCCL's k launches then one synchronize (the group runs them one
// after another, each with its agreement round and commit). Serial: each op is waited
// for before the next is issued.
double TidalTime(TidalGroups& g, coll::OpType op, uint64_t size, int k, bool queued,
                 bool* failed) {
  auto run = [&](int iters) {
    g.RunRanks(g.All(), [&](int r) -> tidal::Task<void> {
      std::vector<std::shared_ptr<coll::Work>> works;
      for (int i = 0; i < iters; ++i) {
        works.push_back(IssueOp(g, r, op, size));
        if (!queued) {
          tidal::Status st = co_await works.back()->Wait();
          if (!st.ok()) {
            std::cerr << "rank " << r << ": " << st.ToString() << "\n";
            *failed = true;
          }
        }
      }
      if (queued) {
        for (auto& w : works) {
          tidal::Status st = co_await w->Wait();
          if (!st.ok()) {
            std::cerr << "rank " << r << ": " << st.ToString() << "\n";
            *failed = true;
          }
        }
      }
    });
  };
  run(2);  // warm-up: working memory grows to this size, streams and peers are set up
  if (coll::trace::Enabled()) coll::trace::Take();  // the timeline of the timed ops only
  double t0 = Now();
  run(k);
  return (Now() - t0) / k;
}

// The per-chunk timeline of rank 0 over the timed ops (--trace), averaged per op: when the
// first WRITE started, how long the data phase ran, the agreement, the output copy, and
// the mean WRITE / staging / fold times seen on the executor.
// With `raw`, every rank's events are also appended to it as [rank, event, seq, ns after
// the first event] (--trace-dump).
nlohmann::json TraceSummary(int rank, nlohmann::json* raw = nullptr) {
  using coll::trace::Ev;
  uint64_t dropped = 0;
  std::vector<coll::trace::Entry> all = coll::trace::Take(&dropped);
  if (raw != nullptr && !all.empty()) {
    uint64_t t0 = all.front().ns;
    for (const auto& e : all) t0 = std::min(t0, e.ns);
    for (const auto& e : all) {
      raw->push_back({e.rank, static_cast<int>(e.ev), e.seq, e.ns - t0});
    }
  }
  std::vector<coll::trace::Entry> ev;
  for (const auto& e : all) {
    if (e.rank == rank) ev.push_back(e);
  }
  std::stable_sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) { return a.ns < b.ns; });
  struct Acc {
    double sum = 0;
    uint64_t n = 0;
    void Add(double v) { sum += v, ++n; }
    double Mean() const { return n ? sum / n : 0; }
  };
  Acc op_us, first_write_us, data_us, agree_us, finalize_us, write_us, stage_us, fold_us,
      between_us, writes, folds, write_span_us;
  size_t i = 0;
  uint64_t prev_done = 0;
  while (i < ev.size()) {
    if (ev[i].ev != Ev::kOpStart) {
      ++i;
      continue;
    }
    const uint64_t start = ev[i].ns;
    if (prev_done != 0) between_us.Add((start - prev_done) / 1e3);
    std::map<uint64_t, uint64_t> w0, s0, f0;
    uint64_t first_write = 0, last_data = start, fin0 = 0, fin1 = 0, last_write = 0;
    uint64_t nw = 0, nf = 0;
    size_t j = i + 1;
    for (; j < ev.size() && ev[j].ev != Ev::kOpStart; ++j) {
      const auto& e = ev[j];
      switch (e.ev) {
        case Ev::kWriteStart:
          w0[e.seq] = e.ns;
          if (first_write == 0) first_write = e.ns;
          break;
        case Ev::kWriteDone:
          if (w0.count(e.seq)) write_us.Add((e.ns - w0[e.seq]) / 1e3);
          last_data = std::max(last_data, e.ns);
          last_write = e.ns;
          ++nw;
          break;
        case Ev::kStageStart: s0[e.seq] = e.ns; break;
        case Ev::kStageDone:
          if (s0.count(e.seq)) stage_us.Add((e.ns - s0[e.seq]) / 1e3);
          break;
        case Ev::kFoldStart: f0[e.seq] = e.ns; break;
        case Ev::kFoldDone:
          if (f0.count(e.seq)) fold_us.Add((e.ns - f0[e.seq]) / 1e3);
          last_data = std::max(last_data, e.ns);
          ++nf;
          break;
        case Ev::kFinalizeStart: fin0 = e.ns; break;
        case Ev::kFinalizeDone: fin1 = e.ns; break;
        default: break;
      }
    }
    if (fin1 != 0) {
      op_us.Add((fin1 - start) / 1e3);
      if (first_write != 0) {
        first_write_us.Add((first_write - start) / 1e3);
        write_span_us.Add((last_write - first_write) / 1e3);
      }
      data_us.Add((last_data - start) / 1e3);
      agree_us.Add((fin0 - last_data) / 1e3);
      finalize_us.Add((fin1 - fin0) / 1e3);
      writes.Add(static_cast<double>(nw));
      folds.Add(static_cast<double>(nf));
      prev_done = fin1;
    }
    i = j;
  }
  return {{"ops", op_us.n}, {"op_us", op_us.Mean()}, {"data_us", data_us.Mean()},
          {"first_write_us", first_write_us.Mean()}, {"write_span_us", write_span_us.Mean()},
          {"agreement_us", agree_us.Mean()}, {"output_copy_us", finalize_us.Mean()},
          {"between_ops_us", between_us.Mean()}, {"writes_per_op", writes.Mean()},
          {"write_us", write_us.Mean()}, {"staging_us", stage_us.Mean()},
          {"folds_per_op", folds.Mean()}, {"fold_us", fold_us.Mean()}, {"dropped", dropped}};
}

void PrintTrace(const nlohmann::json& t) {
  std::printf("#   rank 0 per op (%d ops): %.1f us = data %.1f (first WRITE at %.1f, WRITEs over "
              "%.1f) + agreement %.1f + output copy %.1f; between ops %.1f; %.1f WRITEs of %.1f us "
              "(staging %.1f), %.1f copies/folds of %.1f us%s\n",
              t["ops"].get<int>(), t["op_us"].get<double>(), t["data_us"].get<double>(),
              t["first_write_us"].get<double>(), t["write_span_us"].get<double>(),
              t["agreement_us"].get<double>(), t["output_copy_us"].get<double>(),
              t["between_ops_us"].get<double>(), t["writes_per_op"].get<double>(),
              t["write_us"].get<double>(), t["staging_us"].get<double>(),
              t["folds_per_op"].get<double>(), t["fold_us"].get<double>(),
              t["dropped"].get<uint64_t>() ? " (events dropped)" : "");
}

// An allreduce over 3 ranks (2+ GPUs) with rank 1 killed at step boundary 1 (inside the ring
// reduce-scatter): its transport crashes and its group halts, as a process dying would.
nlohmann::json KillRun(uint64_t size, coll::ProcessGroupOptions pg, uint64_t slice,
                       const po::variables_map& vm) {
  constexpr int kRanks = 3, kVictim = 1;
  double t_kill = 0;
  TidalGroups* gp = nullptr;
  pg.step_hook = [&](const coll::StepEvent& e) {
    if (e.rank != kVictim || e.op_seq != 1 || e.boundary != 1 || t_kill != 0) return;
    t_kill = Now();
    gp->fabric->cuda_transport(kVictim).Crash();
    gp->pg[kVictim]->Halt();
  };
  auto g = MakeGroups(kRanks, size, pg, slice, vm, /*shared_loop=*/true);
  if (!g) return {{"error", "setup failed"}};
  gp = g.get();
  const uint64_t count = size / sizeof(float);
  for (int r = 0; r < kRanks; ++r) {
    std::vector<float> v(count, static_cast<float>(r + 1));
    g->fabric->CopyIn(g->out[r], v.data(), size);
    g->fabric->CopyIn(g->in[r], v.data(), size);  // --direct-outputs: out of place
  }
  SyncDevices(g->fabric->device_count());
  // op 0: a clean allreduce (the baseline time, and every rank's memory grown); op 1: killed.
  double t_clean0 = Now(), t_clean = 0;
  std::vector<tidal::Status> st(kRanks);
  std::vector<std::vector<int>> failed(kRanks);
  std::vector<double> t_done(kRanks, 0), t_detect(kRanks, 0);
  g->RunRanks(g->All(), [&](int r) -> tidal::Task<void> {
    co_await IssueOp(*g, r, coll::OpType::kAllReduce, size)->Wait();
  });
  t_clean = Now() - t_clean0;
  for (int r = 0; r < kRanks; ++r) {  // reset the inputs: op 0 summed in place
    std::vector<float> v(count, static_cast<float>(r + 1));
    g->fabric->CopyIn(g->out[r], v.data(), size);
  }
  SyncDevices(g->fabric->device_count());
  double t_start = Now();
  g->RunRanks(g->All(), [&](int r) -> tidal::Task<void> {
    auto w = IssueOp(*g, r, coll::OpType::kAllReduce, size);
    if (r == kVictim) co_return;
    while (!w->done()) {  // watch for the moment this survivor knows the victim is dead
      if (t_detect[r] == 0 && !g->pg[r]->dead_ranks().empty()) t_detect[r] = Now();
      co_await tidal::SleepFor(g->fabric->env(0), 20'000);
    }
    st[r] = co_await w->Wait();
    if (t_detect[r] == 0) t_detect[r] = Now();
    t_done[r] = Now();
    failed[r] = w->failed_ranks();
  });
  nlohmann::json out = {{"ranks", kRanks}, {"victim", kVictim}, {"bytes", size},
                        {"clean_allreduce_ms", t_clean * 1e3},
                        {"killed_at_ms", (t_kill - t_start) * 1e3}};
  uint64_t wrong = 0;
  for (int r : {0, 2}) {
    std::vector<float> got(count);
    g->fabric->CopyOut(got.data(), g->out[r], size);
    for (float x : got) wrong += x != 4.0f;  // ranks 0 and 2: 1 + 3
    if (g->out_of_place) {  // the input is never written: the retry recomputed from it
      g->fabric->CopyOut(got.data(), g->in[r], size);
      for (float x : got) wrong += x != static_cast<float>(r + 1);
    }
    out["survivors"].push_back({{"rank", r}, {"status", st[r].ToString()},
                                {"failed_ranks", failed[r]},
                                {"detect_ms_after_kill", (t_detect[r] - t_kill) * 1e3},
                                {"done_ms_after_kill", (t_done[r] - t_kill) * 1e3}});
  }
  out["wrong"] = wrong;
  return out;
}

int Coll(const po::variables_map& vm) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) {
    std::cerr << "coll: no CUDA device\n";
    return 77;
  }
  const uint64_t min = vm["min"].as<uint64_t>(), max = vm["max"].as<uint64_t>();
  const int iters = vm["iters"].as<int>();
  const int trials = std::max(1, vm["trials"].as<int>());
  const int n = vm.count("ranks") ? vm["ranks"].as<int>() : devices;
  const uint64_t verify_max = vm["verify-max"].as<uint64_t>();
  coll::ProcessGroupOptions pg;
  pg.group_name = "bench";
  pg.slot_bytes = vm["slot"].as<uint64_t>();
  pg.slots_per_channel = vm["slots"].as<uint32_t>();
  pg.device_chunks = vm["chunks"].as<uint32_t>();
  coll::CudaReducer::SetBlocksPerSm(vm["blocks-per-sm"].as<unsigned>());
  pg.device_chunk_min_bytes = vm["chunk-min"].as<uint64_t>();
  pg.device_short_last_chunk = vm.count("short-last-chunk") > 0;
  pg.yield_between_ops = vm.count("yield-between-ops") > 0;
  pg.direct_outputs = vm.count("direct-outputs") > 0;
  pg.device_pull = vm.count("no-pull") == 0;
  pg.timeout_ns = 30'000'000'000ULL;  // a hang shows as OPERATION_TIMEOUT, not a stuck run
  const std::string alg = vm["algorithm"].as<std::string>();
  if (auto a = coll::ParseAlgorithm(alg); a.ok()) {
    pg.algorithm = *a;
  } else {
    std::cerr << "coll: --algorithm: " << a.status().ToString() << "\n";
    return 2;
  }
  const uint64_t slice = std::max<uint64_t>(vm["slice"].as<uint64_t>(), pg.slot_bytes);
  int cuda_rt = 0, driver = 0;
  cudaRuntimeGetVersion(&cuda_rt);
  cudaDriverGetVersion(&driver);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  auto g = MakeGroups(n, max, pg, slice, vm);
  if (!g) return 1;
  if (vm.count("trace") || vm.count("trace-dump")) coll::trace::Enable(size_t{1} << 22);
#if TIDAL_BENCH_HAVE_NCCL
  // NCCL runs one rank per GPU: with more ranks than GPUs (or --no-nccl) tidal runs alone.
  std::unique_ptr<NcclRunner> nccl;
  if (vm.count("no-nccl") == 0 && n <= devices) nccl = std::make_unique<NcclRunner>(n, max);
  if (!nccl) {
    std::printf("# NCCL not run: %s\n",
                vm.count("no-nccl") ? "--no-nccl"
                                    : "more ranks than GPUs (NCCL takes one rank per GPU)");
  }
  const int nccl_version = nccl ? nccl->version() : 0;
#else
  const int nccl_version = 0;
#endif
  std::printf("# tidal ProcessGroup on GPU tensors vs NCCL %d: %d ranks on %d x %s, float sum, "
              "slot %s x %u, chunks >= %u per message (each >= %s%s), algorithm %s, CUDA runtime %d, "
              "driver %d; spin %.0f us, poll gap %.1f us, completion %s, caller polling %s, %s, "
              "tensors %s, "
              "event loops %s, outputs %s, pull %s\n",
              nccl_version, n, devices, prop.name, Human(pg.slot_bytes).c_str(),
              pg.slots_per_channel, pg.device_chunks, Human(pg.device_chunk_min_bytes).c_str(),
              pg.device_short_last_chunk ? ", the last half a chunk" : "",
              alg.c_str(), cuda_rt, driver, vm["spin-us"].as<double>(),
              vm["poll-gap-us"].as<double>(), vm["completion"].as<std::string>().c_str(),
              CallerPoll(vm) ? "on" : "off",
              vm.count("serial") ? "ops waited one at a time" : "ops queued, then waited",
              vm.count("register") ? "registered (RegisterBuffer)" : "not registered (staged)",
              vm["loops"].as<std::string>() == "rank" ? "one per rank" : "one for all ranks",
              pg.direct_outputs ? "direct (direct_outputs, allreduce/broadcast out of place)"
                                : "committed by copy (allreduce/broadcast in place)",
              !pg.device_pull ? "off (pushed)"
              : pg.direct_outputs && vm.count("register")
                  ? "on (broadcast/alltoall receivers READ registered inputs)"
                  : "on (inactive: needs --register and --direct-outputs)");
  std::printf("# %d trials per size, tidal's k ops then NCCL's k ops in each; the times are "
              "each side's median trial, ratio = NCCL's median time / tidal's, min-max: the "
              "lowest and highest ratio of one trial\n",
              trials);
  // The copy engines' ceiling for tidal's data path (its WRITEs are cudaMemcpyPeerAsync):
  // GPU0 -> GPU1 alone, and both directions at once, `max` bytes each.
  nlohmann::json ceiling;
  if (n >= 2 && devices >= 2) {
    cudaStream_t st[2];
    for (int d = 0; d < 2; ++d) {
      CUDA_OK(cudaSetDevice(d));
      // Peer access as the transport has it (without it the copy goes through the host).
      cudaError_t e = cudaDeviceEnablePeerAccess(1 - d, 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
      else CUDA_OK(e);
      CUDA_OK(cudaStreamCreateWithFlags(&st[d], cudaStreamNonBlocking));
    }
    auto peer = [&](bool both, int k) {
      for (int i = 0; i < k; ++i) {
        CUDA_OK(cudaMemcpyPeerAsync(g->out[1], 1, g->in[0], 0, max, st[0]));
        if (both) CUDA_OK(cudaMemcpyPeerAsync(g->out[0], 0, g->in[1], 1, max, st[1]));
      }
      for (int d = 0; d < 2; ++d) CUDA_OK(cudaStreamSynchronize(st[d]));
    };
    const int k = Iters(max, iters);
    peer(true, 2);
    double t0 = Now();
    peer(false, k);
    const double one = static_cast<double>(max) * k / (Now() - t0) / 1e9;
    t0 = Now();
    peer(true, k);
    const double each = static_cast<double>(max) * k / (Now() - t0) / 1e9;
    std::printf("# copy-engine ceiling, cudaMemcpyPeerAsync %s: GPU0->GPU1 alone %.1f GB/s; "
                "both directions at once %.1f GB/s each\n",
                Human(max).c_str(), one, each);
    ceiling = {{"bytes", max}, {"one_direction_GBps", one}, {"each_of_both_directions_GBps", each}};
    for (int d = 0; d < 2; ++d) cudaStreamDestroy(st[d]);
  }
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json dumps = nlohmann::json::array();  // --trace-dump
  bool failed = false;
  const std::string ops = "," + vm["ops"].as<std::string>() + ",";
  for (const CollKind& c : kCollKinds) {
    if (ops != ",all," && ops.find("," + std::string(c.name) + ",") == std::string::npos) continue;
    const double bus = coll::BusBandwidthFactor(c.op, static_cast<uint64_t>(n));
    std::printf("# %s\n%10s %12s %6s %6s %12s %10s %10s %8s %12s %10s %8s %14s\n", c.name, "size",
                "count", "type", "redop", "tidal us", "algbw", "busbw", "#wrong", "nccl us",
                "busbw", "ratio", "min-max");
    nlohmann::json rows = nlohmann::json::array();
    std::vector<coll::ProcessGroupStats> before(n);
    for (int r = 0; r < n; ++r) before[r] = g->pg[r]->stats();
    for (uint64_t size : Sizes(min, max, vm["step"].as<uint64_t>())) {
      const int k = Iters(size, iters);
      std::string wrong = "-";
      uint64_t w = 0;
      if (size <= verify_max) {
        w = Verify(*g, c.op, size, &failed);
        wrong = std::to_string(w);
        if (w != 0) failed = true;
      }
      // `trials` rounds of k ops each, tidal then NCCL; each side's figure is its median
      // round (the timeline is of the last tidal round).
      std::vector<double> tt, tn, tr;
      for (int trial = 0; trial < trials; ++trial) {
        tt.push_back(TidalTime(*g, c.op, size, k, !vm.count("serial"), &failed));
#if TIDAL_BENCH_HAVE_NCCL
        if (nccl) {
          tn.push_back(nccl->Time(c.op, size, k));
          tr.push_back(tn.back() / tt.back());
        }
#endif
      }
      const double t = Median(tt);
      nlohmann::json timeline;
      nlohmann::json raw = nlohmann::json::array();
      const bool dump = vm.count("trace-dump") && size == vm["dump-bytes"].as<uint64_t>();
      if (coll::trace::Enabled()) timeline = TraceSummary(0, dump ? &raw : nullptr);
      if (dump) dumps.push_back({{"collective", c.name}, {"bytes", size}, {"events", raw}});
      const double algbw = static_cast<double>(size) / t / 1e9;
      double t_nccl = 0, busbw_nccl = 0;
#if TIDAL_BENCH_HAVE_NCCL
      if (!tn.empty()) {
        t_nccl = Median(tn);
        busbw_nccl = static_cast<double>(size) / t_nccl / 1e9 * bus;
      }
#endif
      const double ratio = busbw_nccl > 0 ? algbw * bus / busbw_nccl : 0;
      const std::string range = RatioRange(tr);
      std::printf("%10s %12llu %6s %6s %12.1f %10.1f %10.1f %8s %12.1f %10.1f %8.3f %14s\n",
                  Human(size).c_str(), (unsigned long long)(size / 4), "float", "sum", t * 1e6,
                  algbw, algbw * bus, wrong.c_str(), t_nccl * 1e6, busbw_nccl, ratio, range.c_str());
      if (!timeline.is_null()) PrintTrace(timeline);
      std::fflush(stdout);
      rows.push_back({{"bytes", size}, {"iters", k}, {"tidal_us", t * 1e6},
                      {"tidal_algbw_GBps", algbw}, {"tidal_busbw_GBps", algbw * bus},
                      {"wrong", size <= verify_max ? nlohmann::json(w) : nlohmann::json()},
                      {"nccl_us", t_nccl * 1e6}, {"nccl_busbw_GBps", busbw_nccl},
                      {"ratio", ratio}, {"trials", trials}, {"trial_tidal_us", tt},
                      {"trial_nccl_us", tn}, {"trial_ratios", tr}, {"trace", timeline}});
    }
    // Which path the collective's messages took, over every rank and size of its table.
    uint64_t chunks = 0, offered = 0, pulled = 0, via_slots = 0, pulled_bytes = 0;
    for (int r = 0; r < n; ++r) {
      const coll::ProcessGroupStats& s = g->pg[r]->stats();
      chunks += s.chunks_sent - before[r].chunks_sent;
      offered += s.pulls_offered - before[r].pulls_offered;
      pulled += s.pulls_read - before[r].pulls_read;
      via_slots += s.pulls_via_slots - before[r].pulls_via_slots;
      pulled_bytes += s.bytes_pulled - before[r].bytes_pulled;
    }
    std::printf("# %s, all ranks and sizes: %llu chunks WRITTEN, %llu messages offered and "
                "%llu READ by their receivers (%llu through slots), %s READ\n",
                c.name, (unsigned long long)chunks, (unsigned long long)offered,
                (unsigned long long)pulled, (unsigned long long)via_slots,
                Human(pulled_bytes).c_str());
    results.push_back({{"collective", c.name}, {"rows", rows}, {"chunks_written", chunks},
                       {"pulls_offered", offered}, {"pulls_read", pulled},
                       {"pulls_via_slots", via_slots}, {"bytes_pulled", pulled_bytes}});
  }
  if (vm.count("trace-dump")) {
    // Events: 0 op start, 1/2 staging queued/done, 3/4 WRITE started/done, 5 arrived,
    // 6/7 copy or fold queued/done, 8/9 output copy queued/done (chunk_trace.h).
    std::ofstream(vm["trace-dump"].as<std::string>()) << dumps.dump() << "\n";
  }
  nlohmann::json kill;
  if (vm.count("kill")) {
    g.reset();  // free the table's GPU memory first
    kill = KillRun(vm["kill-bytes"].as<uint64_t>(), pg, slice, vm);
    std::printf("# allreduce, 3 ranks, rank 1 killed at step boundary 1: %s\n",
                kill.dump().c_str());
    if (!kill.contains("wrong") || kill["wrong"] != 0) failed = true;
  }
  if (vm.count("json")) {
    nlohmann::json j = {{"bench", "coll"}, {"ranks", n}, {"devices", devices},
                        {"device", prop.name}, {"cuda_runtime", cuda_rt}, {"driver", driver},
                        {"nccl_version", nccl_version}, {"slot_bytes", pg.slot_bytes},
                        {"slots_per_channel", pg.slots_per_channel},
                        {"device_chunks", pg.device_chunks},
                        {"device_chunk_min_bytes", pg.device_chunk_min_bytes},
                        {"device_short_last_chunk", pg.device_short_last_chunk},
                        {"yield_between_ops", pg.yield_between_ops},
                        {"registered_tensors", vm.count("register") > 0},
                        {"direct_outputs", pg.direct_outputs},
                        {"device_pull", pg.device_pull},
                        {"blocks_per_sm", vm["blocks-per-sm"].as<unsigned>()},
                        {"loops", vm["loops"].as<std::string>()},
                        {"algorithm", alg}, {"copy_engine_ceiling", ceiling},
                        {"spin_us", vm["spin-us"].as<double>()},
                        {"poll_gap_us", vm["poll-gap-us"].as<double>()},
                        {"event_bytes", vm["event-bytes"].as<uint64_t>()},
                        {"streams_per_peer", vm["streams-per-peer"].as<uint32_t>()},
                        {"completion", vm["completion"].as<std::string>()},
                        {"caller_polling", CallerPoll(vm)},
                        {"reducer_caller_completions", coll::CudaReducer::CallerCompletions()},
                        {"queued", !vm.count("serial")}, {"trials", trials},
                        {"results", results}, {"kill", kill}};
    std::ofstream(vm["json"].as<std::string>()) << j.dump(2) << "\n";
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc(
      "tidal-cuda-bench {transfer|nccl|coll|hops|kernels} [options]\n"
      "  transfer: GPU0->GPU1 WRITE through the engine vs cudaMemcpyPeerAsync\n"
      "  nccl:     NCCL collectives' algbw/busbw over every visible GPU\n"
      "  coll:     tidal's ProcessGroup on GPU tensors beside NCCL, busbw and ratio\n"
      "  hops:     fixed cost of the chunk path's hand-offs beside bare CUDA calls\n"
      "  kernels:  the reducer's copy and fold kernels' bandwidth beside cudaMemcpy D2D\nOptions");
  desc.add_options()("help,h", "this help")
      ("min", po::value<uint64_t>()->default_value(1ULL << 20), "smallest size in bytes")
      ("max", po::value<uint64_t>()->default_value(1ULL << 30), "largest size in bytes")
      ("step", po::value<uint64_t>()->default_value(4), "size multiplier between rows")
      ("iters", po::value<int>()->default_value(50), "most timed iterations per size")
      ("trials", po::value<int>()->default_value(5),
       "transfer, coll: timed rounds per size, tidal and its peer alternating; the figures "
       "are each side's median round, with the lowest and highest round's ratio beside")
      ("slice", po::value<uint64_t>()->default_value(64ULL << 20), "engine slice bytes (transfer)")
      ("window", po::value<uint64_t>()->default_value(1),
       "transfer: requests in flight on both sides (tidal: one batch of W WRITEs to W distinct "
       "ranges; memcpyPeer: W copies queued, one synchronize); 1: one at a time")
      ("json", po::value<std::string>(), "also write the figures as JSON to this file")
      ("ranks", po::value<int>(), "coll: ranks (default: one per GPU)")
      ("slot", po::value<uint64_t>()->default_value(64ULL << 20),
       "coll: slot (chunk) bytes (64 MiB x 4 slots: the best of the sweep in docs/performance.md)")
      ("slots", po::value<uint32_t>()->default_value(4), "coll: slots per peer (chunks in flight)")
      ("chunks", po::value<uint32_t>()->default_value(1),
       "coll: cut each step's message to a peer into at least this many chunks "
       "(ProcessGroupOptions::device_chunks; 1: slot-sized chunks)")
      ("blocks-per-sm", po::value<unsigned>()->default_value(8),
       "coll: the reducer kernels' grid, blocks per multiprocessor (CudaReducer::SetBlocksPerSm)")
      ("short-last-chunk", "coll: ProcessGroupOptions::device_short_last_chunk (a message of 2+ "
                           "chunks ends with half a chunk, the first one longer)")
      ("yield-between-ops", "coll: ProcessGroupOptions::yield_between_ops (one loop turn "
                            "between queued ops, so ranks sharing the loop start together)")
      ("chunk-min", po::value<uint64_t>()->default_value(1ULL << 20),
       "coll: the smallest such chunk (device_chunk_min_bytes; a multiple of 64 KiB)")
      ("no-nccl", "coll: run tidal alone (NCCL is also left out with more ranks than GPUs)")
      ("algorithm", po::value<std::string>()->default_value("ring"),
       "coll: ring, direct, auto or split (AllReduce and Broadcast in two steps over every "
       "link: schedule.h)")
      ("verify-max", po::value<uint64_t>()->default_value(64ULL << 20),
       "coll: check every output element up to this size")
      ("ops", po::value<std::string>()->default_value("all"),
       "coll: comma-separated collectives of the table, or all")
      ("kill", "coll: then an allreduce over 3 ranks with rank 1 killed mid-run")
      ("trace", "coll: record the per-chunk timeline and print rank 0's mean per op "
                "under each row")
      ("register", "coll: register every rank's input and output tensors with its group "
                   "(ProcessGroup::RegisterBuffer): chunks leave without a staging copy")
      ("direct-outputs", "coll: ProcessGroupOptions::direct_outputs (out-of-place ops use the "
                         "output as working memory: no copy on commit) and allreduce/broadcast "
                         "out of place, as NCCL's")
      ("no-pull", "coll: ProcessGroupOptions::device_pull off: broadcast and alltoall push "
                  "(WRITE into the receiver's slots) even with --register --direct-outputs")
      ("loops", po::value<std::string>()->default_value("shared"),
       "coll: shared (every rank on CudaFabric's one event loop) or rank (an event loop and "
       "a thread per rank; the kill drill stays on the shared loop)")
      ("trace-dump", po::value<std::string>(),
       "coll: write every rank's raw timeline of the --dump-bytes rows to this JSON file")
      ("dump-bytes", po::value<uint64_t>()->default_value(64ULL << 20),
       "coll: the size whose timeline --trace-dump writes")
      ("serial", "coll: wait for each op before issuing the next (default: issue the "
                 "iterations, then wait, as NCCL's launches then one synchronize)")
      ("spin-us", po::value<double>()->default_value(1000),
       "event loop, transport progress threads and reducer completion thread poll this "
       "long before sleeping (0: sleep at once). The default, 1 ms, outlasts one op's or "
       "window's wait up to 256 MiB, as the peers' waits spin (cudaStreamSynchronize under "
       "CUDA's default schedule, NCCL's kernels)")
      ("hop-bytes", po::value<uint64_t>()->default_value(4096), "hops: payload bytes")
      ("hop-iters", po::value<int>()->default_value(2000), "hops: timed iterations each")
      ("event-bytes", po::value<uint64_t>()->default_value(
                          tidal::backends::cuda::CudaTransport::kDefaultEventBytes),
       "transports: a copy of at least this many bytes gets a completion event of its own; "
       "smaller ones of one Submit share one per stream (CudaTransport::SetEventBytes; 0: an "
       "event per copy)")
      ("streams-per-peer", po::value<uint32_t>()->default_value(1),
       "transports: CUDA streams per device and peer; copies of at least --event-bytes take "
       "them in turn, so large copies to one peer can run at once on separate copy engines "
       "(CudaTransport::SetStreamsPerPeer)")
      ("poll-gap-us", po::value<double>()->default_value(0),
       "pause between event polls of the transport and reducer threads while work runs "
       "(0: a yield)")
      ("caller-poll", po::value<int>()->default_value(1),
       "1: the spinning event loop asks the transports' and the reducer's completion events "
       "itself (CudaTransport::SetCallerPolling, CudaReducer::PollFromCaller); 0: their "
       "threads alone poll and hand completions over")
      ("batch-ramp", po::value<int>()->default_value(1),
       "transports: batched copies of one Submit go out in two calls, the first once a "
       "quarter of its tasks are checked (CudaTransport::SetBatchRamp, default on); 0: one "
       "call after every task was checked")
      ("completion", po::value<std::string>()->default_value("poll"),
       "reducer completions: poll (events) or hostfunc (cudaLaunchHostFunc)")
      ("kill-bytes", po::value<uint64_t>()->default_value(256ULL << 20), "coll: its size")
      ("command", po::value<std::string>(), "transfer, nccl or coll");
  po::positional_options_description pos;
  pos.add("command", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << desc << "\n";
    return vm.count("help") ? 0 : 2;
  }
  const std::string cmd = vm["command"].as<std::string>();
  if (cmd == "transfer") return Transfer(vm);
  if (cmd == "coll") return Coll(vm);
  if (cmd == "hops") return Hops(vm);
  if (cmd == "kernels") return Kernels(vm);
#if TIDAL_BENCH_HAVE_NCCL
  if (cmd == "nccl") return Nccl(vm);
#else
  if (cmd == "nccl") {
    std::cerr << "built without NCCL (nccl.h / libnccl not found at configure time)\n";
    return 1;
  }
#endif
  std::cerr << "unknown command '" << cmd << "'\n" << desc << "\n";
  return 2;
}
