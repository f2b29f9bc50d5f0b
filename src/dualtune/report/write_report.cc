#include <filesystem>
#include <iostream>

#include "dualtune/report/report.h"
#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::report {

void write_report(const eval::CompatibilityReport& rep, const std::string& out_dir) {
  ensure_writable_dir(out_dir);
  write_text_atomic((fs::path(out_dir) / "report.json").string(), report_json(rep));
  const std::vector<std::string> plots = write_plots(rep, out_dir, std::cerr);
  write_text_atomic((fs::path(out_dir) / "report.md").string(), markdown_report(rep, plots));
  write_text_atomic((fs::path(out_dir) / "report.html").string(), html_report(rep));
}

}  // namespace dualtune::report
