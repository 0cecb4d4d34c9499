// The kernel tests' element readers and writers: tidal/cluster/values.h under the names
// the tests use (the collectives harness moved to cluster/ and shares them).
#pragma once

#include "tidal/cluster/values.h"

namespace tidal::coll::testing {
using ::tidal::cluster::LoadValue;
using ::tidal::cluster::StoreValue;
}  // namespace tidal::coll::testing
