// Command-line parsing shared by tidal's tools: parses with Boost.Program_options, prints
// the error and the usage on bad input (exit 2), the usage on --help (exit 0).
//
// Every program that runs seeds takes them the same way: `--seeds A..B` (inclusive, A <= B),
// and, where the program had it, `--seed N` as shorthand for `--seeds N..N`. Both are
// declared by AddSeedOptions and read back by SelectedSeeds; a malformed range is a parse
// error that names the option and the text given.
#pragma once

#include <boost/program_options.hpp>
#include <charconv>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tidal::tools {

// An inclusive range of seeds, first <= last.
struct SeedRange {
  uint64_t first = 1;
  uint64_t last = 1;
  uint64_t count() const { return last - first + 1; }
};

inline std::string ToString(const SeedRange& r) {
  return std::to_string(r.first) + ".." + std::to_string(r.last);
}

namespace detail {
inline bool ParseSeed(std::string_view text, uint64_t* v) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *v);
  return ec == std::errc() && end == text.data() + text.size();
}
}  // namespace detail

// Parses "A..B". On failure returns nullopt and says why in *why.
inline std::optional<SeedRange> ParseSeedRange(std::string_view text, std::string* why) {
  const size_t dots = text.find("..");
  if (dots == std::string_view::npos) {
    *why = "want A..B (for example 1..1000); one seed N is N..N";
    return std::nullopt;
  }
  SeedRange r;
  if (!detail::ParseSeed(text.substr(0, dots), &r.first)) {
    *why = "the first seed is not an unsigned 64-bit number";
    return std::nullopt;
  }
  if (!detail::ParseSeed(text.substr(dots + 2), &r.last)) {
    *why = "the last seed is not an unsigned 64-bit number";
    return std::nullopt;
  }
  if (r.first > r.last) {
    *why = "the first seed is above the last";
    return std::nullopt;
  }
  if (r.first == 0 && r.last == UINT64_MAX) {
    *why = "the range holds more seeds than a 64-bit count";
    return std::nullopt;
  }
  return r;
}

// Boost.Program_options finds this by argument-dependent lookup for po::value<SeedRange>.
inline void validate(boost::any& v, const std::vector<std::string>& values, SeedRange*, int) {
  namespace po = boost::program_options;
  po::validators::check_first_occurrence(v);
  const std::string& text = po::validators::get_single_string(values);
  std::string why;
  std::optional<SeedRange> r = ParseSeedRange(text, &why);
  if (!r) {
    // Boost fills in the option's name when the error leaves store().
    throw po::error_with_option_name(
        "option '%canonical_option%': '" + text + "' is not a seed range: " + why, "", text);
  }
  v = *r;
}

inline std::ostream& operator<<(std::ostream& os, const SeedRange& r) { return os << ToString(r); }

// Declares --seeds A..B (default `fallback`) and, with `single`, --seed N.
inline void AddSeedOptions(boost::program_options::options_description& desc, SeedRange fallback,
                           bool single) {
  namespace po = boost::program_options;
  desc.add_options()("seeds", po::value<SeedRange>()->default_value(fallback, ToString(fallback)),
                     "seeds to run, an inclusive range A..B");
  if (single) {
    desc.add_options()("seed", po::value<uint64_t>(), "one seed N (same as --seeds N..N)");
  }
}

// The seeds the command line asks for. --seed and an explicit --seeds together are an
// error (nullopt, the message printed); neither gives the --seeds default.
inline std::optional<SeedRange> SelectedSeeds(const boost::program_options::variables_map& vm,
                                              std::string_view program) {
  const bool range = vm.count("seeds") != 0 && !vm["seeds"].defaulted();
  if (vm.count("seed") != 0) {
    if (range) {
      std::cerr << program << ": give --seed N or --seeds A..B, not both\n";
      return std::nullopt;
    }
    const uint64_t one = vm["seed"].as<uint64_t>();
    return SeedRange{one, one};
  }
  return vm["seeds"].as<SeedRange>();
}

// Returns the exit code when the program should stop now, nullopt to go on.
inline std::optional<int> ParseCommandLine(int argc, char** argv,
                                           const boost::program_options::options_description& desc,
                                           boost::program_options::variables_map* vm) {
  namespace po = boost::program_options;
  try {
    po::store(po::parse_command_line(argc, argv, desc), *vm);
    po::notify(*vm);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n" << desc;
    return 2;
  }
  if (vm->count("help")) {
    std::cout << desc;
    return 0;
  }
  return std::nullopt;
}

}  // namespace tidal::tools
