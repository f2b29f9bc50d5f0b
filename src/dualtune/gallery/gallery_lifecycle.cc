// Gallery: rolling a model back and the lifecycle history. A rollback is the way out of a
// rollout that goes wrong before its cutover (`gallery retire` of the deployed model):
// the rolling-out model's queries stop at once, the deployed model answers every query
// again (it never lost an embedding), and what the backfill stored is kept, so rolling the
// same model out again resumes its plan instead of starting over. After the cutover the
// old embeddings are gone, so there is nothing to return to: the rollback says so.
#include "dualtune/gallery/gallery.h"

#include "dualtune/gallery/gallery_internal.h"
#include "dualtune/util/error.h"

namespace dualtune::gallery {
namespace {

/// Why there is nothing to roll back, from the last event of the history.
std::string nothing_to_roll_back(const std::string& dir, const std::string& deployed,
                                 const std::vector<HistoryEvent>& history) {
  const std::string head = "gallery " + dir + ": nothing to roll back: ";
  if (!history.empty()) {
    const HistoryEvent& e = history.back();
    const std::string before = history.size() > 1 ? history[history.size() - 2].deployed : e.model;
    if (e.event == "retire" && e.deployed != e.model && before == e.model)
      return head + "'" + e.deployed + "' became the deployed model at " + e.time + " when '" + e.model +
             "' was retired, which deleted the embeddings of '" + e.model + "'; a rollback returns to the deployed "
             "model only before that retire (to go back now, roll '" + e.model + "' out again and backfill it)";
    if (e.event == "retire")
      return head + "no model is rolling out ('" + e.model + "' was retired at " + e.time + "); '" + deployed +
             "' is deployed";
    if (e.event == "rollback")
      return head + "'" + e.model + "' was already rolled back at " + e.time + "; '" + deployed + "' is deployed";
  }
  return head + "no model is rolling out; '" + deployed + "' is deployed (expected `gallery rollout` before a rollback)";
}

}  // namespace

ModelInfo Gallery::rollback() {
  DT_CHECK(!options_.read_only, "gallery rollback: the gallery was opened read-only");
  std::lock_guard<std::mutex> wl(writer_mu_);
  ModelInfo m;
  {
    std::lock_guard<std::mutex> lk(store_mu_);
    const auto rolling = detail::rolling_out(store_->models());
    const std::string deployed = deployed_locked().name;
    if (!rolling) DT_THROW(nothing_to_roll_back(dir_, deployed, store_->history()));
    HistoryEvent e;
    e.event = "rollback";
    e.model = rolling->name;
    e.deployed = deployed;
    e.note = "kept " + std::to_string(store_->count_vectors(rolling->version_id)) + " of " +
             std::to_string(store_->item_count()) + " embeddings for a later rollout";
    // The role change is the whole rollback: a backfill of the model (here or in another
    // process) finds it no longer rolling out at its next commit_batch and stops there.
    store_->set_role_recorded(rolling->id, Role::kRolledBack, e);
    m = store_->model(rolling->name);
  }
  invalidate_local();  // the next search rebuilds its query plans: the model's queries are refused
  return m;
}

std::vector<HistoryEvent> Gallery::history() {
  std::lock_guard<std::mutex> lk(store_mu_);
  return store_->history();
}

}  // namespace dualtune::gallery
