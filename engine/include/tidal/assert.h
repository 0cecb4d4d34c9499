// Assertions for invariants (never for input: bad input is a Status).
//
// TIDAL_ASSERT is always on, in release builds too, and aborts. Before aborting it calls
// the failure hook of the current thread, which the simulator installs to print the
// seed, the trace digest and the replay command. TIDAL_DASSERT is for expensive checks
// and compiles away unless TIDAL_DEBUG_ASSERTS is defined (debug presets define it).
#pragma once

namespace tidal {

using AssertHook = void (*)(void* context);

// Installs a hook run (once) before an assertion aborts on this thread; returns the
// previous one. The simulator installs its hook while a World runs on the thread.
struct AssertHookEntry {
  AssertHook hook = nullptr;
  void* context = nullptr;
};
AssertHookEntry SetAssertHook(AssertHookEntry entry);

[[noreturn]] void AssertFail(const char* expr, const char* file, int line, const char* msg);

}  // namespace tidal

#define TIDAL_ASSERT(cond)                                                \
  do {                                                                    \
    if (!(cond)) [[unlikely]]                                             \
      ::tidal::AssertFail(#cond, __FILE__, __LINE__, nullptr);            \
  } while (0)

#define TIDAL_ASSERT_MSG(cond, msg)                                       \
  do {                                                                    \
    if (!(cond)) [[unlikely]]                                             \
      ::tidal::AssertFail(#cond, __FILE__, __LINE__, (msg));              \
  } while (0)

#ifdef TIDAL_DEBUG_ASSERTS
#define TIDAL_DASSERT(cond) TIDAL_ASSERT(cond)
#else
#define TIDAL_DASSERT(cond) \
  do {                      \
    (void)sizeof(cond);     \
  } while (0)
#endif
