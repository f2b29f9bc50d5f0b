#pragma once
// The gallery's vocabulary, shared by the store, search, backfill and the CLI.
//
// Layout (FAISS convention, as in eval/): n vectors of size d are a compact row-major
// n×d float32 matrix. The store keeps every vector exactly as the model produced it;
// search compares L2-normalised first-min(Dq, Dv) components (cosine), as eval does.
//
// An embedding *version* is a set of vectors, one per item at most, that live in one
// model's space. A model's native version holds what that model embedded from the
// images (version name = model name). A derived version (forward
// transformation: "new@h") holds vectors of another version mapped into this model's
// space without an image: VersionInfo::derived_from names its source. A query of model M
// scores each item against the first version it has in M's precedence list
// (Gallery::precedence): M's native version, then derived versions in M's space, then,
// for a model that is rolling out, the deployed model's native version.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace dualtune::gallery {

/// Lifecycle of a model in a gallery (the transition: docs/GALLERY.md, docs/ARCHITECTURE.md).
enum class Role {
  kDeployed,    ///< serves today's queries; every item has its embedding
  kRollingOut,  ///< new queries use it; items are being backfilled with it
  kRetired,     ///< no longer queried; its embeddings are dropped
  /// was rolling out until `gallery rollback`: no longer queried nor backfilled, but its
  /// embeddings (and plan) are kept, so rolling it out again resumes where it stopped
  kRolledBack,
};
const char* role_name(Role r);          ///< "deployed" | "rolling_out" | "retired" | "rolled_back"
Role parse_role(const std::string& s);  ///< inverse of role_name; throws on anything else

struct ModelInfo {
  int64_t id = 0;
  std::string name;
  int64_t dim = 0;
  std::string path;         ///< run directory or TorchScript file ("" when only embeddings were imported)
  std::string config_hash;  ///< fingerprint recorded at registration (model_fingerprint); "" = not checked
  Role role = Role::kDeployed;
  int64_t version_id = 0;   ///< its native version
};

struct VersionInfo {
  int64_t id = 0;
  std::string name;
  int64_t model_id = 0;       ///< the model whose space the vectors live in
  int64_t dim = 0;
  int64_t derived_from = 0;   ///< 0: native (embedded from images); else the source version's id
  std::string transform;      ///< derived versions: what mapped them (path or fingerprint); "" for native
  int64_t generation = 0;     ///< bumped whenever vectors of this version are deleted (caches rebuild)
};

/// One item to add: a stable external key (image path, id), an optional label and
/// camera (for labelled evaluation), and where its image is (0: no image known).
struct ItemRecord {
  std::string key;
  std::string label;     ///< "" = unlabelled
  int64_t cam = -1;      ///< -1 = unknown
  int64_t source_id = 0; ///< sources table row (Store::add_source), 0 = none
};

/// Gallery::status().
struct VersionStatus {
  VersionInfo version;
  int64_t embeddings = 0;  ///< items that have a vector of this version
};
struct ModelStatus {
  ModelInfo model;
  int64_t embeddings = 0;         ///< items with the native version
  double backfilled = 0;          ///< embeddings / items (1 when the gallery is empty)
};
struct BackfillState {
  std::string model;       ///< model being backfilled ("" = no plan)
  std::string order;       ///< order of the plan
  int64_t planned = 0;     ///< items in the plan
  int64_t done = 0;        ///< planned items embedded
  int64_t failed = 0;      ///< planned items skipped (missing or corrupt image), not retried
  bool running = false;    ///< a backfill is running in this Gallery object right now
};
/// The compatibility gate of a rollout (app/rollout_gate.h measures it): on a labelled
/// probe set, the deployed model's queries against its own gallery (old/old) and the new
/// model's queries against the deployed model's gallery (new→old), leave-one-out as
/// `dualtune eval` computes them. The gate passes when new→old mAP > old/old mAP (eval's
/// verdict rule, eval/verdict.h). Rates are fractions; NaN = not measured.
struct RolloutGate {
  /// passed (measured, new→old above old/old) | forced (measured and failing, or not
  /// measured, and --force given) | ungated (not measured: the library call, the demo)
  std::string decision = "ungated";
  std::string probe;  ///< what was measured ("" = nothing): "features OLD_DIR NEW_DIR", "report PATH (new→old)"
  double old_old_map = NAN, new_old_map = NAN, new_new_map = NAN;
  double old_old_top1 = NAN, new_old_top1 = NAN, new_new_top1 = NAN;
  int64_t queries = 0;  ///< probe queries evaluated (new→old)
  bool measured() const { return !probe.empty(); }
};

/// One entry of the gallery's lifecycle history (Store::history, oldest first).
struct HistoryEvent {
  int64_t id = 0;
  std::string time;      ///< ISO 8601 UTC
  std::string event;     ///< rollout | rollback | retire
  std::string model;     ///< the model rolled out, rolled back or retired
  std::string deployed;  ///< the deployed model right after the event
  std::string note;      ///< e.g. "resumed: 5 of 14 items already embedded"
  bool has_gate = false; ///< rollout events carry their gate
  RolloutGate gate;
};

struct GalleryStatus {
  std::string dir;
  std::string uuid;
  int64_t items = 0;
  std::vector<ModelStatus> models;
  std::vector<VersionStatus> versions;
  BackfillState backfill;
  std::vector<HistoryEvent> history;  ///< rollouts, rollbacks, retirements, oldest first
};

/// The rollout whose gate describes the gallery now: the last rollout event of the model
/// rolling out, else of the deployed model (how it got there); null when there is none
/// (the deployed model was created with the gallery, or the history predates it).
const HistoryEvent* current_rollout(const GalleryStatus& status);

}  // namespace dualtune::gallery
