#pragma once
// The compatibility gate of `dualtune gallery rollout` (torch-free, tested in test_core).
// Before the new model's queries meet the deployed model's gallery, the gate measures
// on a labelled probe set what they will see: old/old (the deployed model's queries
// against its own gallery, today's quality) and new→old (the new model's queries against
// the same gallery), and new/new for reference, leave-one-out, by eval::evaluate_compatibility
// — the numbers `dualtune eval` reports. It passes when new→old mAP > old/old mAP
// (eval's verdict rule, eval/verdict.h); a failing or unmeasured gate refuses the rollout
// unless forced, and the gallery stays unchanged.
#include <string>

#include "dualtune/features/feature_set.h"
#include "dualtune/gallery/types.h"

namespace dualtune::app {

/// The two models the gate is about, as the gallery knows them: the deployed one and the
/// one to roll out (names and embedding sizes, checked against the probe's).
struct GateModels {
  std::string old_name, new_name;
  int64_t old_dim = 0, new_dim = 0;
};

/// Measures the gate on two feature directories of the same labelled probe images (as
/// `dualtune extract` writes them), one per model. Throws when they differ in items or
/// labels, have no labels, or do not match the models' embedding sizes.
gallery::RolloutGate gate_from_features(const std::string& old_dir, const std::string& new_dir, const GateModels& m,
                                        int threads = 0);

/// The same on features in memory (e.g. extracted by the rollout itself); `probe` is left
/// for the caller to describe.
gallery::RolloutGate gate_from_feature_sets(features::FeatureSet old_set, features::FeatureSet new_set,
                                            const GateModels& m, int threads = 0);

/// Reads the gate from an existing `dualtune eval` report (report.json, or its
/// directory): the upgrade whose new and old models carry the gallery's names, else the
/// report's only upgrade against its old model's own gallery. Throws naming the upgrades
/// the report has when none fits, or when its models' sizes differ from the gallery's.
gallery::RolloutGate gate_from_report(const std::string& report, const GateModels& m);

/// Decides the gate: "passed" when new→old mAP > old/old mAP. Otherwise (failing, or not
/// measured) throws a message naming both numbers (or how to give a probe), unless
/// `force`: then "forced".
void judge_gate(gallery::RolloutGate& gate, bool force, const GateModels& m);

/// One line for people: "new→old mAP 61.20% > old/old 58.10% (top-1 71.43% vs 64.29%),
/// new/new 70.00%, 14 probe queries (features a b): passed".
std::string gate_summary(const gallery::RolloutGate& gate);

}  // namespace dualtune::app
