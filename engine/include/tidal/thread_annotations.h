// Clang thread-safety annotations (-Wthread-safety); no-ops on other compilers.
#pragma once

#if defined(__clang__)
#define TIDAL_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TIDAL_THREAD_ANNOTATION(x)
#endif

#define TIDAL_GUARDED_BY(mu) TIDAL_THREAD_ANNOTATION(guarded_by(mu))
#define TIDAL_REQUIRES(mu) TIDAL_THREAD_ANNOTATION(requires_capability(mu))
