// glyph_benchmark_check DIR: runs data::check_glyph_benchmark on DIR and prints
// "<split> <classes> <images>" per split (exit 0), or the error (exit 1). The
// generator's test (tests/scripts/test_make_glyphs.py) runs it on what
// tools/openset/make_glyphs.py writes, so both sides agree on the layout.
#include <cstdio>
#include <exception>

#include "dualtune/data/glyph_benchmark.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: glyph_benchmark_check DIR\n");
    return 2;
  }
  try {
    const auto b = dualtune::data::check_glyph_benchmark(argv[1]);
    const struct {
      const char* name;
      dualtune::data::GlyphSplitCounts n;
    } splits[] = {{"train-old", b.train_old}, {"train-new", b.train_new}, {"test", b.test}};
    for (const auto& s : splits) {
      std::printf("%s %lld %lld\n", s.name, static_cast<long long>(s.n.classes), static_cast<long long>(s.n.images));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
