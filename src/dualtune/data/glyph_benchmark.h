#pragma once
// The open-set glyph benchmark's data root, as its generator writes it
// (tools/openset/make_glyphs.py; layout, counts and pixel statistics in tools/openset/README.md):
//
//   ROOT/train-old/<class_hex>/<n>.png   the old model's training classes
//   ROOT/train-new/<class_hex>/<n>.png   the new models' classes, a superset of train-old's
//   ROOT/test/<class_hex>/<n>.png        classes seen by neither model (leave-one-out retrieval)
//   ROOT/manifest.json                   counts.<split>.{classes, images}, splits.<split> = class names
//
// The generator deletes manifest.json when it starts and writes it last, so a root
// without it is an unfinished (or foreign) generation. check_glyph_benchmark compares
// the folders with the manifest; smaller generations (--n-old/--n-new/--n-test) pass.
#include <cstdint>
#include <string>

namespace dualtune::data {

/// Where the generator lives in a dualtune source tree (relative to its root), for error messages.
inline constexpr const char* kGlyphGenerator = "tools/openset/make_glyphs.py";
inline constexpr const char* kGlyphGeneratorReadme = "tools/openset/README.md";

/// Class and image counts of one split, as found on disk.
struct GlyphSplitCounts {
  int64_t classes = 0, images = 0;
};

struct GlyphBenchmark {
  GlyphSplitCounts train_old, train_new, test;
};

/// Checks that root holds a complete generation: manifest.json present and readable;
/// each split's class folders exactly the manifest's classes and its image count (files
/// with an image extension, as ImageFolder reads them) the manifest's; train-old's classes
/// among train-new's; test's disjoint from both. Throws dualtune::Error naming the
/// generator and its README and saying what is missing or different.
GlyphBenchmark check_glyph_benchmark(const std::string& root);

}  // namespace dualtune::data
