#pragma once
// Crash-test hook. When the environment variable DUALTUNE_FAULT is "<point>:<n>", the
// n-th time this process reaches fault_point("<point>") it kills itself with SIGKILL,
// exactly as `kill -9` would, so the crash-safety tests can stop a writer at a chosen
// instant (inside a transaction, between two of them). Otherwise it does nothing.
// Points: "before-commit" (rows inserted, transaction open), "after-commit"; and in
// `dualtune train` (engine/trainer.cc) "after-epoch" (the epoch's checkpoint, meta.json
// and log are on disk), where a kill leaves a run that --resume continues.
namespace dualtune::gallery {

void fault_point(const char* point);

}  // namespace dualtune::gallery
