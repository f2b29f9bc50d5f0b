// Market-1501 reader; layout and label rules in market1501.h.
#include "dualtune/data/market1501.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "dualtune/data/image_decode.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::data {
namespace {

// Reads 1+ decimal digits at s[pos]; advances pos.
bool read_digits(const std::string& s, size_t& pos, std::string& out, size_t exact = 0) {
  const size_t b = pos;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
  out = s.substr(b, pos - b);
  if (out.empty() || out.size() > 9) return false;
  return exact == 0 || out.size() == exact;
}

bool expect(const std::string& s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) return ++pos, true;
  return false;
}

}  // namespace

MarketName parse_market_name(const std::string& name_in) {
  const std::string name = fs::path(name_in).filename().string();
  auto bad = [&](const char* what) -> MarketName {
    DT_THROW("Market-1501 file ", name_in, ": expected a name PPPP_cCsS_FFFFFF_NN.jpg, found '", name, "' (", what,
             ")");
  };
  MarketName m;
  size_t pos = 0;
  std::string d;
  if (name.rfind("-1_", 0) == 0) {
    m.pid = -1;
    m.pid_text = "-1";
    pos = 2;
  } else {
    if (!read_digits(name, pos, d, 4)) return bad("person id must be 4 digits or -1");
    m.pid = std::stoi(d);
    m.pid_text = d;
  }
  if (!expect(name, pos, '_') || !expect(name, pos, 'c')) return bad("missing _c<camera>");
  if (!read_digits(name, pos, d)) return bad("missing camera number");
  m.cam = std::stoi(d);
  if (!expect(name, pos, 's')) return bad("missing s<sequence>");
  if (!read_digits(name, pos, d)) return bad("missing sequence number");
  m.seq = std::stoi(d);
  if (!expect(name, pos, '_') || !read_digits(name, pos, d)) return bad("missing _<frame>");
  m.frame = std::stoi(d);
  if (!expect(name, pos, '_') || !read_digits(name, pos, d)) return bad("missing _<box index>");
  m.index = std::stoi(d);
  std::string ext = name.substr(pos);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") return bad("expected extension .jpg");
  return m;
}

Market1501Dataset::Market1501Dataset(const std::string& root, const std::string& split) {
  std::string sub;
  if (split == "train") {
    sub = "bounding_box_train";
  } else if (split == "query") {
    sub = "query";
  } else if (split == "gallery" || split == "test") {
    sub = "bounding_box_test";
  } else {
    DT_THROW("Market-1501 ", root, ": expected split train, query or gallery, found '", split, "'");
  }
  const fs::path dir = fs::path(root) / sub;
  std::error_code ec;
  DT_CHECK(fs::is_directory(dir, ec), "Market-1501 ", root, ": expected directory ", dir.string(), ", found none");

  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file() || !has_image_extension(name)) continue;
    files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  DT_CHECK(!files.empty(), "Market-1501 ", dir.string(), ": expected PPPP_cCsS_FFFFFF_NN.jpg images, found none");

  std::vector<MarketName> parsed;
  parsed.reserve(files.size());
  std::map<std::string, int64_t> pids;  // sorted 4-digit strings
  for (const auto& f : files) {
    parsed.push_back(parse_market_name(f));
    if (parsed.back().pid >= 0) pids.emplace(parsed.back().pid_text, 0);
  }
  std::vector<std::string> names;
  for (auto& [text, label] : pids) {
    label = static_cast<int64_t>(names.size());
    names.push_back(text);
  }
  classes_ = ClassMap(std::move(names));
  files_ = std::move(files);
  for (const auto& m : parsed) {
    labels_.push_back(m.pid < 0 ? -1 : pids.at(m.pid_text));
    cameras_.push_back(m.cam);
  }
}

Image Market1501Dataset::image(size_t i) const { return decode_image_file(files_.at(i)); }

}  // namespace dualtune::data
