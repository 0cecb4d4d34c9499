// Assertions for fuzz targets.
//
// A fuzz target proves a property by aborting when it does not hold: libFuzzer (and the
// standalone smoke driver) record an abort as a crash and keep the input. The check is
// always on, whatever NDEBUG says, because a target that cannot fail proves nothing.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#define TIDAL_FUZZ_CHECK(cond, what)                                                      \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n  %s\n", __FILE__, __LINE__, \
                   #cond, std::string(what).c_str());                                     \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
