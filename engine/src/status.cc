#include "tidal/status.h"

#include <cstdio>
#include <cstdlib>

namespace tidal {

std::string Status::ToString() const {
  std::string s(ErrorCodeName(code_));
  s += "(" + std::to_string(static_cast<int32_t>(code_)) + ")";
  if (!message_.empty()) s += ": " + message_;
  return s;
}

namespace {
thread_local AssertHookEntry g_assert_hook;
thread_local bool g_in_assert = false;
}  // namespace

AssertHookEntry SetAssertHook(AssertHookEntry entry) {
  AssertHookEntry previous = g_assert_hook;
  g_assert_hook = entry;
  return previous;
}

void AssertFail(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "\nTIDAL_ASSERT failed: %s\n  at %s:%d\n", expr, file, line);
  if (msg != nullptr) std::fprintf(stderr, "  %s\n", msg);
  if (!g_in_assert && g_assert_hook.hook != nullptr) {
    g_in_assert = true;  // a failing hook must not recurse
    g_assert_hook.hook(g_assert_hook.context);
  }
  std::fflush(stderr);
  std::abort();
}

}  // namespace tidal
