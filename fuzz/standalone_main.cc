// Standalone driver for the fuzz targets in normal (gcc, non-libFuzzer) builds: the ctest
// smoke run of label `fuzz`.
//
// It calls the target's LLVMFuzzerTestOneInput on every corpus file (sorted by path, so
// the order is fixed), then on inputs mutated from the corpus and the dictionary by a
// seeded generator, until --runs inputs or --seconds of wall time, whichever comes
// first. The sequence of inputs depends only on the seed, the corpus and the dictionary;
// the wall-time bound only decides how long a prefix of it runs. A failing property
// aborts inside the target; the driver's signal handler first writes the input to
// `smoke-crash-<target>-<seed>` in the working directory so it can be replayed:
//   <target>_smoke smoke-crash-...        (a file argument is run alone)
//
// Usage: <target>_smoke [--seed=N] [--seconds=S] [--runs=N] [--max_len=N]
//                       [--dict=FILE] CORPUS_DIR_OR_FILE...
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;

// The input being run, for the crash handler (which may only use async-signal-safe
// calls: open, write, close).
const Bytes* g_current = nullptr;
char g_crash_path[512];

void OnCrash(int sig) {
  if (g_current != nullptr) {
    const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t ignored = ::write(fd, g_current->data(), g_current->size());
      (void)ignored;
      ::close(fd);
    }
    const char msg[] = "\nfuzz smoke: the failing input was written to ";
    ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
    ignored = ::write(2, g_crash_path, std::strlen(g_crash_path));
    ignored = ::write(2, "\n", 1);
    (void)ignored;
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void Run(const Bytes& input) {
  g_current = &input;
  // A pointer that is valid even for an empty input, as libFuzzer passes.
  static const uint8_t kEmpty = 0;
  LLVMFuzzerTestOneInput(input.empty() ? &kEmpty : input.data(), input.size());
  g_current = nullptr;
}

Bytes ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// libFuzzer dictionary lines: `name="value"` or `"value"`, with \\, \" and \xNN escapes.
std::vector<Bytes> ReadDict(const std::string& path) {
  std::vector<Bytes> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t open = line.find('"');
    const size_t close = line.rfind('"');
    if (line.empty() || line[0] == '#' || open == std::string::npos || close <= open) continue;
    Bytes token;
    for (size_t i = open + 1; i < close; ++i) {
      if (line[i] == '\\' && i + 1 < close) {
        if (line[i + 1] == 'x' && i + 3 < close) {
          token.push_back(static_cast<uint8_t>(std::stoi(line.substr(i + 2, 2), nullptr, 16)));
          i += 3;
        } else {
          token.push_back(static_cast<uint8_t>(line[++i]));
        }
      } else {
        token.push_back(static_cast<uint8_t>(line[i]));
      }
    }
    out.push_back(std::move(token));
  }
  return out;
}

// One to four random edits: flip a bit, set a byte to an interesting value, insert or
// erase a run, copy a run within the input, splice in another corpus input or a
// dictionary token. Enough to walk away from the seeds into the decoders' error paths.
Bytes Mutate(Bytes in, const std::vector<Bytes>& corpus, const std::vector<Bytes>& dict,
             size_t max_len, std::mt19937_64& rng) {
  auto below = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  static const uint8_t kInteresting[] = {0, 1, 0x7f, 0x80, 0xff, '0', '9', '=', ',', '\n', '"'};
  const int edits = 1 + static_cast<int>(below(4));
  for (int e = 0; e < edits; ++e) {
    switch (below(7)) {
      case 0:
        if (!in.empty()) in[below(in.size())] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:
        if (!in.empty()) in[below(in.size())] = kInteresting[below(sizeof(kInteresting))];
        break;
      case 2: {
        const size_t at = below(in.size() + 1), n = 1 + below(8);
        for (size_t i = 0; i < n; ++i) in.insert(in.begin() + at, static_cast<uint8_t>(rng()));
        break;
      }
      case 3:
        if (!in.empty()) {
          const size_t at = below(in.size()), n = 1 + below(std::min<size_t>(16, in.size() - at));
          in.erase(in.begin() + at, in.begin() + at + n);
        }
        break;
      case 4:
        if (!in.empty()) {
          const size_t from = below(in.size()), n = 1 + below(in.size() - from);
          const Bytes run(in.begin() + from, in.begin() + from + n);
          in.insert(in.begin() + below(in.size() + 1), run.begin(), run.end());
        }
        break;
      case 5:
        if (!corpus.empty()) {
          const Bytes& other = corpus[below(corpus.size())];
          const size_t cut = below(in.size() + 1), from = below(other.size() + 1);
          in.resize(cut);
          in.insert(in.end(), other.begin() + from, other.end());
        }
        break;
      default:
        if (!dict.empty()) {
          const Bytes& token = dict[below(dict.size())];
          in.insert(in.begin() + below(in.size() + 1), token.begin(), token.end());
        }
    }
  }
  if (in.size() > max_len) in.resize(max_len);
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 1;
  double seconds = 2.0;
  uint64_t runs = 1'000'000;
  size_t max_len = 4096;
  std::string dict_path;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) { return a.substr(std::strlen(flag)); };
    if (a.rfind("--seed=", 0) == 0) {
      seed = std::stoull(value("--seed="));
    } else if (a.rfind("--seconds=", 0) == 0) {
      seconds = std::stod(value("--seconds="));
    } else if (a.rfind("--runs=", 0) == 0) {
      runs = std::stoull(value("--runs="));
    } else if (a.rfind("--max_len=", 0) == 0) {
      max_len = std::stoull(value("--max_len="));
    } else if (a.rfind("--dict=", 0) == 0) {
      dict_path = value("--dict=");
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  const std::string target = std::filesystem::path(argv[0]).filename().string();
  std::snprintf(g_crash_path, sizeof(g_crash_path), "smoke-crash-%s-%llu", target.c_str(),
                static_cast<unsigned long long>(seed));
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, OnCrash);

  // Corpus files, sorted so the replay order and the mutation sources are fixed.
  std::vector<std::filesystem::path> files;
  bool single_file = false;
  for (const std::string& p : paths) {
    if (std::filesystem::is_directory(p)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(p)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else if (std::filesystem::is_regular_file(p)) {
      files.push_back(p);
      single_file = paths.size() == 1;
    } else {
      std::fprintf(stderr, "%s: no such corpus file or folder: %s\n", target.c_str(), p.c_str());
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<Bytes> corpus;
  for (const auto& f : files) corpus.push_back(ReadFile(f));
  for (const Bytes& input : corpus) Run(input);
  std::printf("%s: %zu corpus inputs passed\n", target.c_str(), corpus.size());
  if (single_file) return 0;  // replaying one input (a crash file): nothing more to do

  const std::vector<Bytes> dict = dict_path.empty() ? std::vector<Bytes>{} : ReadDict(dict_path);
  std::mt19937_64 rng(seed);
  // The wall clock only bounds how long the smoke runs; it never chooses an input.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  uint64_t done = 0;
  Run(Bytes{});
  for (; done < runs && std::chrono::steady_clock::now() < deadline; ++done) {
    const Bytes base = corpus.empty() ? Bytes{} : corpus[rng() % corpus.size()];
    const Bytes input = Mutate(base, corpus, dict, max_len, rng);
    Run(input);
  }
  std::printf("%s: %llu mutated inputs passed (seed %llu, dictionary of %zu tokens)\n",
              target.c_str(), static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(seed), dict.size());
  return 0;
}
