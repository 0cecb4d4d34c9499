// Command-line parsing shared by tidal's tools: parses with Boost.Program_options, prints
// the error and the usage on bad input (exit 2), the usage on --help (exit 0).
#pragma once

#include <boost/program_options.hpp>
#include <iostream>
#include <optional>

namespace tidal::tools {

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
