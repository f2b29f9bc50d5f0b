#include "dualtune/report/gnuplot.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dualtune/util/atomic_file.h"

namespace fs = std::filesystem;

namespace dualtune::report {


/// Model names in file names: keep [A-Za-z0-9._-], replace the rest.
std::string file_stem(const std::string& name) {
  std::string out;
  for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return out.empty() ? "model" : out;
}

/// A gnuplot single-quoted string ('' escapes a quote).
std::string gp_str(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string num(double x) {
  if (!std::isfinite(x)) return "NaN";
  std::ostringstream os;
  os << std::setprecision(6) << x;
  return os.str();
}

bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

const char* kTerminal = "set terminal pngcairo noenhanced size 900,650 font 'sans,12' linewidth 2\n";

/// Writes <stem>.dat and <stem>.gp in plot_dir and renders <stem>.png. `script` is the
/// plotting part; it reads the data as 'DATA'.
bool render(const std::string& plot_dir, const std::string& stem, const std::string& data, const std::string& script,
            std::ostream& warn) {
  const std::string png = stem + ".png";
  const std::string tmp = png + ".tmp." + std::to_string(::getpid());
  write_text_atomic((fs::path(plot_dir) / (stem + ".dat")).string(), data);
  std::string body = script;
  for (size_t p; (p = body.find("DATA")) != std::string::npos;) body.replace(p, 4, gp_str(stem + ".dat"));
  const std::string gp = std::string(kTerminal) + "set output " + gp_str(tmp) + "\n" + body;
  write_text_atomic((fs::path(plot_dir) / (stem + ".gp")).string(), gp);
  const std::string log = stem + ".gnuplot.log";
  const std::string cmd = "cd " + shell_quote(plot_dir) + " && gnuplot " + shell_quote(stem + ".gp") + " >" +
                          shell_quote(log) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const fs::path tmp_path = fs::path(plot_dir) / tmp;
  const fs::path log_path = fs::path(plot_dir) / log;
  std::error_code ec;
  if (rc != 0 || !fs::exists(tmp_path) || fs::file_size(tmp_path, ec) == 0) {
    warn << "warning: gnuplot failed on " << (fs::path(plot_dir) / (stem + ".gp")).string() << " (see "
         << log_path.string() << "); plot skipped\n";
    fs::remove(tmp_path, ec);
    return false;
  }
  fs::rename(tmp_path, fs::path(plot_dir) / png, ec);
  if (ec) {
    warn << "warning: cannot rename " << tmp_path.string() << ": " << ec.message() << "; plot skipped\n";
    fs::remove(tmp_path, ec);
    return false;
  }
  fs::remove(log_path, ec);
  return true;
}


}  // namespace dualtune::report
