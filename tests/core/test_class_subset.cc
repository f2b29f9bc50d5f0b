#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "dualtune/data/class_map.h"
#include "dualtune/data/class_subset.h"
#include "dualtune/data/subset.h"
#include "dualtune/util/error.h"

using namespace dualtune::data;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dualtune::Error& e) {
    return e.what();
  }
  return "<no error>";
}

using Names = std::vector<std::string>;
const Names kDigits{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
const Names kPids{"0002", "0007", "0010", "0011"};

// A tiny in-memory dataset: item i has label labels[i].
struct FakeDataset : Dataset {
  std::vector<int64_t> labels;
  ClassMap map;
  size_t size() const override { return labels.size(); }
  Image image(size_t) const override { return {}; }
  int64_t label(size_t i) const override { return labels[i]; }
  std::string path(size_t i) const override { return "item" + std::to_string(i); }
  const ClassMap& classes() const override { return map; }
};

}  // namespace

TEST(ClassSubset, AllRangeListFraction) {
  EXPECT_EQ(select_classes(kDigits, "all"), kDigits);
  EXPECT_EQ(select_classes(kDigits, "0-4"), (Names{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(select_classes(kDigits, "7,0,2"), (Names{"0", "2", "7"}));  // dataset order
  EXPECT_EQ(select_classes(kDigits, "0-1, 8-9,1"), (Names{"0", "1", "8", "9"}));
  EXPECT_EQ(select_classes(kDigits, "fraction:0.5"), (Names{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(select_classes(kDigits, "fraction:0.25"), (Names{"0", "1", "2"}));  // ceil(2.5)
  EXPECT_EQ(select_classes(kDigits, "fraction:1"), kDigits);
}

TEST(ClassSubset, IntegersMatchZeroPaddedNames) {
  EXPECT_EQ(select_classes(kPids, "2,11"), (Names{"0002", "0011"}));
  EXPECT_EQ(select_classes(kPids, "0007"), (Names{"0007"}));
  EXPECT_EQ(select_classes(kPids, "5-10"), (Names{"0007", "0010"}));
}

TEST(ClassSubset, NamesWithDashesMatchExactly) {
  const Names n{"ankle-boot", "t-shirt"};
  EXPECT_EQ(select_classes(n, "t-shirt"), (Names{"t-shirt"}));
}

TEST(ClassSubset, Errors) {
  EXPECT_NE(error_of([] { select_classes(kDigits, "12"); }).find("unknown class '12'"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "cat"); }).find("unknown class 'cat'"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "4-2"); }).find("LO > HI"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "20-30"); }).find("selects no class"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "1,,2"); }).find("empty item"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, ""); }).find("empty spec"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "fraction:0"); }).find("0 < F <= 1"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "fraction:1.5"); }).find("found '1.5'"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes(kDigits, "fraction:x"); }).find("fraction:F"), std::string::npos);
  EXPECT_NE(error_of([] { select_classes({}, "fraction:0.5"); }).find("selects no class"), std::string::npos);
}

TEST(ClassSubset, SubsetDatasetRemapsLabelsDensely) {
  auto base = std::make_shared<FakeDataset>();
  base->map = ClassMap(Names{"a", "b", "c", "d"});
  base->labels = {0, 1, 2, 3, 2, -1, 1};
  auto sub = apply_class_subset(base, "b,c");
  ASSERT_EQ(sub->size(), 4u);  // items 1, 2, 4, 6; junk dropped
  EXPECT_EQ(sub->classes().names(), (Names{"b", "c"}));
  EXPECT_EQ(sub->path(0), "item1");
  EXPECT_EQ(sub->label(0), 0);
  EXPECT_EQ(sub->label(1), 1);
  EXPECT_EQ(sub->label(2), 1);
  EXPECT_EQ(sub->path(3), "item6");
  EXPECT_EQ(sub->label(3), 0);
}

TEST(ClassSubset, LimitKeepsAFixedSortedSelection) {
  auto base = std::make_shared<FakeDataset>();
  base->map = ClassMap(Names{"a", "b"});
  for (int i = 0; i < 100; ++i) base->labels.push_back(i % 2);
  auto a = apply_limit(base, 10);
  auto b = apply_limit(base, 10);
  ASSERT_EQ(a->size(), 10u);
  std::vector<std::string> pa, pb;
  for (size_t i = 0; i < 10; ++i) pa.push_back(a->path(i)), pb.push_back(b->path(i));
  EXPECT_EQ(pa, pb);
  EXPECT_NE(pa.back(), "item9");  // not simply the first ten
  EXPECT_EQ(a->classes().names(), base->map.names());
  EXPECT_EQ(apply_limit(base, 1000)->size(), 100u);
}

TEST(Subset, ShardsPartitionTheDatasetInOrder) {
  auto base = std::make_shared<FakeDataset>();
  base->map = ClassMap(Names{"a", "b"});
  for (int i = 0; i < 11; ++i) base->labels.push_back(i % 2);
  std::vector<std::string> seen;
  for (int r = 0; r < 3; ++r) {
    auto s = apply_shard(base, r, 3);
    EXPECT_EQ(s->classes().names(), base->map.names());
    for (size_t i = 0; i < s->size(); ++i) {
      EXPECT_EQ(s->path(i), base->path(static_cast<size_t>(r) + 3 * i));
      EXPECT_EQ(s->label(i), base->label(static_cast<size_t>(r) + 3 * i));
      seen.push_back(s->path(i));
    }
  }
  EXPECT_EQ(seen.size(), 11u);
  EXPECT_NE(error_of([&] { apply_shard(base, 3, 3); }).find("expected 0 <= rank < world"), std::string::npos);
}

TEST(ClassMap, JsonRoundTripAndLookups) {
  ClassMap m(Names{"0002", "0007", "t-shirt"});
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.name(2), "t-shirt");
  EXPECT_EQ(m.label("0007"), 1);
  EXPECT_FALSE(m.label("0003").has_value());
  const ClassMap back = ClassMap::from_json(m.to_json(), "mem");
  EXPECT_EQ(back.names(), m.names());
  const auto dir = std::filesystem::temp_directory_path() / ("dt_classmap_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string p = (dir / "classes.json").string();
  m.save(p);
  EXPECT_EQ(ClassMap::load(p).names(), m.names());
  std::filesystem::remove_all(dir);
}

TEST(ClassMap, Errors) {
  EXPECT_NE(error_of([] { ClassMap(Names{"a", "a"}); }).find("duplicate class name 'a'"), std::string::npos);
  EXPECT_NE(error_of([] { ClassMap(Names{"a"}).name(1); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([] { ClassMap::from_json("{", "f.json"); }).find("f.json"), std::string::npos);
  EXPECT_NE(error_of([] { ClassMap::from_json("{\"classes\": [1]}", "f.json"); }).find("string"), std::string::npos);
  EXPECT_NE(error_of([] { ClassMap::from_json("[]", "f.json"); }).find("\"classes\""), std::string::npos);
}

TEST(ClassMap, N2oMapsByName) {
  const ClassMap old_classes(Names{"0", "1", "2", "3", "4"});
  const ClassMap new_classes(Names{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
  EXPECT_EQ(n2o_label_map(new_classes, old_classes), (std::vector<int64_t>{0, 1, 2, 3, 4, -1, -1, -1, -1, -1}));
  // Different order and partial overlap: matched by name, not by index.
  const ClassMap a(Names{"cat", "dog", "eel"});
  const ClassMap b(Names{"eel", "cat"});
  EXPECT_EQ(n2o_label_map(a, b), (std::vector<int64_t>{1, -1, 0}));
}
