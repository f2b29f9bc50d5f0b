// Completeness check of a generated glyph benchmark; layout in glyph_benchmark.h.
#include "dualtune/data/glyph_benchmark.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "dualtune/data/image_decode.h"
#include "dualtune/util/atomic_file.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune::data {
namespace {

const char* const kSplits[] = {"train-old", "train-new", "test"};

[[noreturn]] void fail(const std::string& root, const std::string& problem) {
  DT_THROW("open-set glyph benchmark at ", root, ": ", problem, ". Generate it with `/usr/bin/python3 ",
           kGlyphGenerator, " --out ", root, "` in a dualtune source tree (about 3 minutes; the Debian font packages ",
           "it needs, its layout and counts are in ", kGlyphGeneratorReadme, ")");
}

/// "a, b, c and 7 more"
std::string some(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 5) out += " and " + std::to_string(names.size() - 5) + " more";
  return out;
}

std::vector<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

GlyphBenchmark check_glyph_benchmark(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    fail(root, fs::exists(root, ec) ? "expected a directory, found a file" : "no such directory");
  }
  const std::string manifest_path = (fs::path(root) / "manifest.json").string();
  if (!fs::exists(manifest_path, ec)) {
    fail(root, "manifest.json is missing (the generator writes it last: the generation did not finish, or this is "
               "not the glyph benchmark)");
  }
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_file(manifest_path));
  } catch (const nlohmann::json::exception& e) {
    fail(root, std::string("manifest.json is not valid JSON (") + e.what() + ")");
  }
  std::map<std::string, std::set<std::string>> classes;
  std::map<std::string, GlyphSplitCounts> found;
  for (const char* split : kSplits) {
    int64_t want_classes = 0, want_images = 0;
    std::set<std::string> want;
    try {
      want_classes = manifest.at("counts").at(split).at("classes").get<int64_t>();
      want_images = manifest.at("counts").at(split).at("images").get<int64_t>();
      for (const auto& c : manifest.at("splits").at(split)) want.insert(c.get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      fail(root, std::string("manifest.json: expected counts.") + split + ".{classes, images} and splits." + split +
                     " (a list of class names), found otherwise (" + e.what() + ")");
    }
    const fs::path dir = fs::path(root) / split;
    if (!fs::is_directory(dir, ec)) fail(root, "the split folder " + dir.string() + " is missing");
    std::set<std::string> have;
    GlyphSplitCounts& n = found[split];
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.' || !e.is_directory()) continue;
      have.insert(name);
      for (const auto& f : fs::directory_iterator(e.path())) {
        const std::string file = f.path().filename().string();
        if (!file.empty() && file[0] != '.' && f.is_regular_file() && has_image_extension(file)) ++n.images;
      }
    }
    n.classes = static_cast<int64_t>(have.size());
    const auto missing = minus(want, have), extra = minus(have, want);
    if (!missing.empty() || !extra.empty() || n.classes != want_classes) {
      fail(root, std::string(split) + " has " + std::to_string(n.classes) + " class folders where manifest.json " +
                     "lists " + std::to_string(want_classes) + (missing.empty() ? "" : "; missing: " + some(missing)) +
                     (extra.empty() ? "" : "; not in the manifest: " + some(extra)));
    }
    if (n.images != want_images) {
      fail(root, std::string(split) + " has " + std::to_string(n.images) + " images where manifest.json counts " +
                     std::to_string(want_images));
    }
    classes[split] = std::move(have);
  }
  const auto old_only = minus(classes["train-old"], classes["train-new"]);
  if (!old_only.empty()) fail(root, "train-old classes missing from train-new: " + some(old_only));
  std::vector<std::string> seen;
  std::set_intersection(classes["test"].begin(), classes["test"].end(), classes["train-new"].begin(),
                        classes["train-new"].end(), std::back_inserter(seen));
  if (!seen.empty()) fail(root, "test classes also in train-new (the benchmark is open set): " + some(seen));
  return {found["train-old"], found["train-new"], found["test"]};
}

}  // namespace dualtune::data
