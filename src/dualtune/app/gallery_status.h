#pragma once
// `dualtune gallery status` without CLI11 (torch-free, tested in test_core): the
// gallery's models, roles, per-model counts, backfilled fractions, backfill progress, the
// current rollout's compatibility gate and the lifecycle history, as a table or as JSON.
#include <string>

#include "dualtune/gallery/types.h"

namespace dualtune::app {

/// The status as the command prints it: a table (json = false) or a JSON document.
std::string gallery_status_text(const gallery::GalleryStatus& status, bool json);

}  // namespace dualtune::app
