#pragma once
// Environment variables as settings: the torchrun rendezvous (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, LOCAL_RANK, LOCAL_WORLD_SIZE) and dualtune's own
// (DUALTUNE_DIST_TIMEOUT, ...). An empty variable counts as unset.
#include <string>

namespace dualtune {

/// $name, or `fallback` when it is unset or empty.
std::string env_or(const char* name, const std::string& fallback);

/// $name as an integer, or `fallback` when it is unset or empty. Throws dualtune::Error
/// naming the variable when it is set to anything but a whole integer.
int env_int(const char* name, int fallback);

}  // namespace dualtune
