#include "dualtune/app/gallery_status.h"

#include <cstdarg>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "dualtune/app/rollout_gate.h"
#include "dualtune/gallery/history_json.h"
#include "dualtune/report/report.h"

namespace dualtune::app {
namespace {

std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

}  // namespace

std::string gallery_status_text(const gallery::GalleryStatus& st, bool json) {
  if (json) {
    nlohmann::json j{{"dir", st.dir}, {"uuid", st.uuid}, {"items", st.items}};
    for (const auto& m : st.models)
      j["models"].push_back({{"name", m.model.name}, {"dim", m.model.dim}, {"role", gallery::role_name(m.model.role)},
                             {"path", m.model.path}, {"fingerprint", m.model.config_hash},
                             {"embeddings", m.embeddings}, {"backfilled", m.backfilled}});
    for (const auto& v : st.versions)
      j["versions"].push_back({{"name", v.version.name}, {"dim", v.version.dim}, {"derived_from", v.version.derived_from},
                               {"embeddings", v.embeddings}});
    j["backfill"] = {{"model", st.backfill.model}, {"order", st.backfill.order}, {"planned", st.backfill.planned},
                     {"done", st.backfill.done}, {"failed", st.backfill.failed}, {"running", st.backfill.running}};
    const gallery::HistoryEvent* cur = gallery::current_rollout(st);
    j["gate"] = cur ? nlohmann::json{{"model", cur->model}, {"time", cur->time}, {"gate", gallery::gate_json(cur->gate)}}
                    : nlohmann::json(nullptr);
    j["history"] = gallery::history_json(st.history);
    return j.dump(2) + "\n";
  }
  std::string out =
      format("gallery %s (uuid %s): %lld items\n", st.dir.c_str(), st.uuid.c_str(), static_cast<long long>(st.items));
  out += format("%-16s %-12s %6s %12s %10s  %s\n", "model", "role", "dim", "embeddings", "backfilled", "path");
  // An empty gallery has no backfilled fraction: "—", not 100 % of nothing.
  const auto percent = [&](double fraction) {
    return st.items > 0 ? format("%9.1f%%", 100 * fraction) : std::string(9, ' ') + "—";
  };
  for (const auto& m : st.models)
    out += format("%-16s %-12s %6lld %12lld %s  %s\n", m.model.name.c_str(), gallery::role_name(m.model.role),
                  static_cast<long long>(m.model.dim), static_cast<long long>(m.embeddings), percent(m.backfilled).c_str(),
                  m.model.path.empty() ? "(imported)" : m.model.path.c_str());
  for (const auto& v : st.versions) {
    if (v.version.derived_from == 0) continue;
    std::string from;
    for (const auto& w : st.versions)
      if (w.version.id == v.version.derived_from) from = w.version.name;
    out += format("%-16s %-12s %6lld %12lld %s  h(%s), %s\n", v.version.name.c_str(), "transformed",
                  static_cast<long long>(v.version.dim), static_cast<long long>(v.embeddings),
                  percent(st.items > 0 ? double(v.embeddings) / double(st.items) : 0.0).c_str(), from.c_str(),
                  v.version.transform.c_str());
  }
  if (!st.backfill.model.empty()) {
    out += format("backfill of %s: ", st.backfill.model.c_str());
    if (st.backfill.planned == 0) out += "not planned yet\n";
    else
      out += format("order %s, %lld of %lld planned items done, %lld failed%s\n", st.backfill.order.c_str(),
                    static_cast<long long>(st.backfill.done), static_cast<long long>(st.backfill.planned),
                    static_cast<long long>(st.backfill.failed), st.backfill.running ? ", running" : "");
  }
  if (const gallery::HistoryEvent* cur = gallery::current_rollout(st))
    out += "gate of " + cur->model + ": " + gate_summary(cur->gate) + "\n";
  if (!st.history.empty()) out += "history:\n";
  for (const auto& e : st.history) {
    out += format("  %s  %-8s %-16s deployed %s", e.time.c_str(), e.event.c_str(), e.model.c_str(), e.deployed.c_str());
    if (e.has_gate) out += ", gate " + e.gate.decision;
    if (e.has_gate && e.gate.measured())
      out += format(" (new→old mAP %s%%, old/old %s%%)", report::percent(e.gate.new_old_map).c_str(),
                    report::percent(e.gate.old_old_map).c_str());
    out += e.note.empty() ? "\n" : "; " + e.note + "\n";
  }
  return out;
}

}  // namespace dualtune::app
