#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "dualtune/config/config.h"
#include "dualtune/util/error.h"

namespace fs = std::filesystem;
using dualtune::Error;
using dualtune::config::Config;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("dt_config_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(Config, DefaultsComeFromTheSchema) {
  Config c;
  EXPECT_EQ(c.get<int64_t>("optim.epochs"), 6);
  EXPECT_DOUBLE_EQ(c.get<double>("optim.lr"), 0.001);
  EXPECT_FLOAT_EQ(c.get<float>("loss.label_smoothing"), 0.1f);
  EXPECT_EQ(c.get<std::string>("data.format"), "idx");
  EXPECT_EQ(c.get<std::string>("old.path"), "");
  EXPECT_TRUE(c.get<bool>("augment.flip"));
  EXPECT_EQ(c.get<std::vector<float>>("data.mean"), std::vector<float>{0.2860f});
  EXPECT_TRUE(c.get<std::vector<int64_t>>("optim.milestones").empty());
  EXPECT_EQ(c.get<int>("data.p"), 16);
  EXPECT_NO_THROW(c.validate());
}

TEST(Config, BaseChainMergesMapsAndReplacesScalarsAndLists) {
  TempDir t;
  t.write("base/base.yml",
          "optim:\n  lr: 0.01\n  epochs: 3\n  milestones: [1, 2]\ndata:\n  classes: 0-4\n  mean: [0.5]\n");
  const std::string child = t.write("child.yml",
                                    "_BASE_: base/base.yml\noptim:\n  epochs: 9\n  milestones: [4]\n"
                                    "model:\n  backbone: convnet-m\n");
  Config c = Config::load(child);
  EXPECT_DOUBLE_EQ(c.get<double>("optim.lr"), 0.01);  // from the base
  EXPECT_EQ(c.get<int64_t>("optim.epochs"), 9);       // child wins
  EXPECT_EQ(c.get<std::vector<int64_t>>("optim.milestones"), std::vector<int64_t>{4});  // list replaced
  EXPECT_EQ(c.get<std::string>("data.classes"), "0-4");
  EXPECT_EQ(c.get<std::string>("model.backbone"), "convnet-m");
  EXPECT_EQ(c.get<std::string>("optim.name"), "adam");  // default kept
  EXPECT_EQ(c.get<std::vector<double>>("data.std"), std::vector<double>{0.353});  // unchanged
}

TEST(Config, BaseListMergesLeftToRight) {
  TempDir t;
  t.write("a.yml", "optim:\n  lr: 0.1\n  epochs: 2\n");
  t.write("b.yml", "optim:\n  lr: 0.2\n");
  const std::string top = t.write("top.yml", "_BASE_: [a.yml, b.yml]\nseed: 7\n");
  Config c = Config::load(top);
  EXPECT_DOUBLE_EQ(c.get<double>("optim.lr"), 0.2);
  EXPECT_EQ(c.get<int64_t>("optim.epochs"), 2);
  EXPECT_EQ(c.get<int64_t>("seed"), 7);
}

TEST(Config, OverridesComeLastAndParseYaml) {
  TempDir t;
  const std::string f = t.write("c.yml", "optim:\n  lr: 0.01\n");
  Config c = Config::load(f, {"optim.lr=0.5", "optim.milestones=[2, 4]", "data.classes=0,2,7", "augment.flip=false"});
  EXPECT_DOUBLE_EQ(c.get<double>("optim.lr"), 0.5);
  EXPECT_EQ(c.get<std::vector<int64_t>>("optim.milestones"), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(c.get<std::string>("data.classes"), "0,2,7");
  EXPECT_FALSE(c.get<bool>("augment.flip"));
}

TEST(Config, UnknownKeyNamesKeyFileAndValidKeys) {
  TempDir t;
  const std::string f = t.write("typo.yml", "optim:\n  lrr: 0.1\n");
  const std::string msg = error_of([&] { Config::load(f); });
  EXPECT_NE(msg.find("unknown key 'optim.lrr' in " + f), std::string::npos) << msg;
  EXPECT_NE(msg.find("valid keys in 'optim': name, lr, weight_decay"), std::string::npos) << msg;

  const std::string o = error_of([&] { Config c; c.set("optim.lrr=1"); });
  EXPECT_NE(o.find("unknown key 'optim.lrr'"), std::string::npos) << o;
  const std::string top = error_of([&] { Config::from_string("sed: 1\n"); });
  EXPECT_NE(top.find("unknown key 'sed'"), std::string::npos) << top;
}

TEST(Config, TypeMismatchNamesKeyExpectedAndFound) {
  const std::string a = error_of([] { Config::from_string("optim:\n  lr: fast\n"); });
  EXPECT_NE(a.find("'optim.lr' expects a number, found 'fast'"), std::string::npos) << a;
  const std::string b = error_of([] { Config::from_string("optim:\n  epochs: [1, 2]\n"); });
  EXPECT_NE(b.find("'optim.epochs' expects an integer, found a list"), std::string::npos) << b;
  const std::string c = error_of([] { Config::from_string("optim:\n  epochs: 2.5\n"); });
  EXPECT_NE(c.find("'optim.epochs' expects an integer, found '2.5'"), std::string::npos) << c;
  const std::string d = error_of([] { Config::from_string("data: 3\n"); });
  EXPECT_NE(d.find("'data' expects a map"), std::string::npos) << d;
  const std::string e = error_of([] { Config::from_string("data:\n  mean: 0.5\n"); });
  EXPECT_NE(e.find("'data.mean' expects a list"), std::string::npos) << e;
  const std::string f = error_of([] { Config::from_string("augment:\n  flip: maybe\n"); });
  EXPECT_NE(f.find("'augment.flip' expects a boolean"), std::string::npos) << f;
}

TEST(Config, ValidationRejectsOutOfRangeValues) {
  const std::string a = error_of([] { Config::from_string("optim:\n  epochs: 0\n"); });
  EXPECT_NE(a.find("'optim.epochs': expected >= 1, found 0"), std::string::npos) << a;
  const std::string b = error_of([] { Config::from_string("compat:\n  l2_weight: -1\n"); });
  EXPECT_NE(b.find("'compat.l2_weight': expected a weight >= 0, found -1.0"), std::string::npos) << b;
  const std::string c = error_of([] { Config::from_string("compat:\n  mix_rho: 1.5\n"); });
  EXPECT_NE(c.find("'compat.mix_rho': expected a fraction in [0, 1], found 1.5"), std::string::npos) << c;
  const std::string ct = error_of([] { Config::from_string("compat:\n  contrast_temperature: 0\n"); });
  EXPECT_NE(ct.find("'compat.contrast_temperature': expected > 0, found 0"), std::string::npos) << ct;
  const std::string d = error_of([] { Config::from_string("augment:\n  erasing: 1.5\n"); });
  EXPECT_NE(d.find("'augment.erasing'"), std::string::npos) << d;
  const std::string e = error_of([] { Config::from_string("loss:\n  weight: -0.5\n"); });
  EXPECT_NE(e.find("'loss.weight'"), std::string::npos) << e;
  const std::string f = error_of([] { Config::from_string("optim:\n  lr: 0\n"); });
  EXPECT_NE(f.find("'optim.lr': expected > 0"), std::string::npos) << f;
  const std::string g = error_of([] { Config::from_string("data:\n  channels: 3\n"); });
  EXPECT_NE(g.find("'data.mean': expected 3 values"), std::string::npos) << g;
  const std::string h = error_of([] { Config::from_string("loss:\n  label_smoothing: 1.0\n"); });
  EXPECT_NE(h.find("'loss.label_smoothing'"), std::string::npos) << h;
  const std::string i = error_of([] { Config::from_string("data:\n  std: [0]\n"); });
  EXPECT_NE(i.find("'data.std': expected values > 0"), std::string::npos) << i;
}

TEST(Config, ValidationChecksEnumsAndCrossKeyRules) {
  const std::string a = error_of([] { Config::from_string("model:\n  backbone: vgg\n"); });
  EXPECT_NE(a.find("'model.backbone': expected one of {convnet-s, convnet-m, resnet18, resnet50, torchscript}, "
                   "found 'vgg'"),
            std::string::npos)
      << a;
  const std::string b = error_of([] { Config::from_string("compat:\n  method: bct\n"); });
  EXPECT_NE(b.find("'old.path'"), std::string::npos) << b;
  EXPECT_NO_THROW(Config::from_string("compat:\n  method: bct\nold:\n  path: runs/old\n"));
  const std::string c = error_of([] { Config::from_string("loss:\n  triplet: 1.0\n"); });
  EXPECT_NE(c.find("'data.sampler': expected 'pk'"), std::string::npos) << c;
  EXPECT_NO_THROW(Config::from_string("loss:\n  triplet: 1.0\ndata:\n  sampler: pk\n"));
  const std::string d = error_of([] { Config::from_string("compat:\n  proto_margin_unit: meters\n"); });
  EXPECT_NE(d.find("'compat.proto_margin_unit': expected one of {absolute, spacing}, found 'meters'"),
            std::string::npos)
      << d;
}

TEST(Config, BaseCycleIsAnError) {
  TempDir t;
  t.write("a.yml", "_BASE_: b.yml\n");
  const std::string b = t.write("b.yml", "_BASE_: a.yml\n");
  const std::string msg = error_of([&] { Config::load(b); });
  EXPECT_NE(msg.find("cycle in _BASE_"), std::string::npos) << msg;
  const std::string self = t.write("self.yml", "_BASE_: self.yml\n");
  EXPECT_NE(error_of([&] { Config::load(self); }).find("cycle"), std::string::npos);
}

TEST(Config, MissingBaseAndSyntaxErrorsNameTheFile) {
  TempDir t;
  const std::string f = t.write("c.yml", "_BASE_: nope.yml\n");
  EXPECT_NE(error_of([&] { Config::load(f); }).find("nope.yml"), std::string::npos);
  const std::string g = t.write("bad.yml", "optim: [\n");
  const std::string msg = error_of([&] { Config::load(g); });
  EXPECT_NE(msg.find(g), std::string::npos) << msg;
}

TEST(Config, DumpKeepsSchemaOrderAndRoundTrips) {
  Config c = Config::from_string("optim:\n  lr: 1e-2\ndata:\n  classes: 0-4\n");
  const std::string text = c.dump();
  EXPECT_LT(text.find("seed:"), text.find("data:"));
  EXPECT_LT(text.find("data:"), text.find("optim:"));
  EXPECT_LT(text.find("format:"), text.find("root:"));
  EXPECT_LT(text.find("  name:"), text.find("  lr:"));
  Config again = Config::from_string(text);
  EXPECT_EQ(again.dump(), text);
  EXPECT_EQ(again.hash(), c.hash());
  EXPECT_EQ(again.get<std::string>("old.path"), "");
  EXPECT_DOUBLE_EQ(again.get<double>("optim.lr"), 0.01);
}

TEST(Config, HashIsStableAndChangesWithAValue) {
  Config a = Config::from_string("optim:\n  lr: 0.001\n");
  Config b;  // same values spelled by the schema
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a.hash().size(), 16u);
  Config c = Config::from_string("", {"optim.lr=0.002"});
  EXPECT_NE(a.hash(), c.hash());
  Config d = Config::from_string("optim:\n  lr: 1e-3\n");  // same number, other spelling
  EXPECT_EQ(a.hash(), d.hash());
  // Execution-only keys do not change what a run computes, nor its hash.
  Config e = Config::from_string("optim:\n  lr: 0.001\n", {"threads=1", "log_every=7", "data.workers=0"});
  EXPECT_EQ(a.hash(), e.hash());
  EXPECT_EQ(e.get<int>("threads"), 1);
}

TEST(Config, TheDefaultsHashAsBeforeLaterKeysExisted) {
  // Finished runs are reused by hash (a demo resumes them), so a key added to the schema
  // must leave the hash unchanged at the value that computes what older runs computed
  // (Config::hash() lists those keys). The literal is the schema defaults' hash from the
  // code before compat.proto_margin_unit existed (c84805b), which runs of the open-set
  // and generations studies carry in their meta.json.
  EXPECT_EQ(Config().hash(), "038edb53f3def146");
  EXPECT_EQ(Config::from_string("", {"compat.proto_margin_unit=absolute", "optim.precision=fp32", "model.path="})
                .hash(),
            "038edb53f3def146");
  EXPECT_NE(Config::from_string("", {"compat.proto_margin_unit=spacing"}).hash(), "038edb53f3def146");
  EXPECT_EQ(Config::from_string("", {"model.init=", "model.init_strict=true"}).hash(), "038edb53f3def146");
  EXPECT_NE(Config::from_string("", {"model.init=resnet18.pt"}).hash(), "038edb53f3def146");
  EXPECT_NE(Config::from_string("", {"model.init_strict=false"}).hash(), "038edb53f3def146");
  // device says where a run executes, not what it computes: never in the hash.
  for (const char* d : {"device=cpu", "device=cuda", "device=auto"})
    EXPECT_EQ(Config::from_string("", {d}).hash(), "038edb53f3def146") << d;
}

TEST(Config, CopiesAreIndependent) {
  Config a;
  Config b = a;
  b.set("optim.epochs=2");
  EXPECT_EQ(a.get<int64_t>("optim.epochs"), 6);
  EXPECT_EQ(b.get<int64_t>("optim.epochs"), 2);
}

TEST(Config, SaveWritesTheDump) {
  TempDir t;
  Config c = Config::from_string("seed: 3\n");
  const std::string p = (t.path / "config.yml").string();
  c.save(p);
  EXPECT_EQ(Config::load(p).hash(), c.hash());
}

TEST(Config, GetNamesMissingKeyAndWrongType) {
  Config c;
  EXPECT_NE(error_of([&] { c.get<int64_t>("optim.nope"); }).find("optim.nope"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get<int64_t>("data.format"); }).find("expected an integer"), std::string::npos);
}

TEST(Config, OldAcceptsAListOfModelsWithDefaultsPerEntry) {
  const auto c = Config::from_string(
      "compat:\n  method: bct\nold:\n  - path: runs/v2\n  - path: runs/v1\n    weight: 0.5\n");
  EXPECT_EQ(c.entries("old"), 2);
  EXPECT_EQ(c.get<std::string>("old.0.path"), "runs/v2");
  EXPECT_EQ(c.get<std::string>("old.1.path"), "runs/v1");
  EXPECT_DOUBLE_EQ(c.get<double>("old.0.weight"), 1.0);  // default filled in per entry
  EXPECT_DOUBLE_EQ(c.get<double>("old.1.weight"), 0.5);
  EXPECT_EQ(c.get<std::string>("old.1.class_map"), "");
  // The dump reloads to the same config.
  const auto again = Config::from_string(c.dump());
  EXPECT_EQ(again.hash(), c.hash());
  EXPECT_EQ(again.get<std::string>("old.1.path"), "runs/v1");
}

TEST(Config, OneOldModelAsAListIsTheSameConfigAsTheMap) {
  const auto list = Config::from_string("compat:\n  method: bct\nold:\n  - path: runs/v2\n");
  const auto map = Config::from_string("compat:\n  method: bct\nold:\n  path: runs/v2\n");
  EXPECT_EQ(list.entries("old"), 1);
  EXPECT_EQ(list.hash(), map.hash());
  EXPECT_EQ(map.get<std::string>("old.path"), "runs/v2");
  EXPECT_EQ(map.get<std::string>("old.0.path"), "runs/v2");  // a map is entry 0
  EXPECT_THROW(map.get<std::string>("old.1.path"), dualtune::Error);
}

TEST(Config, OldListErrorsNameTheEntry) {
  auto what = [](const std::string& yaml, const std::vector<std::string>& ov = {}) {
    try {
      Config::from_string(yaml, ov);
    } catch (const dualtune::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string two = "compat:\n  method: bct\nold:\n  - path: a\n  - path: b\n";
  EXPECT_NE(what("old:\n  - path: a\n  - pth: b\n").find("unknown key 'old[1].pth'"), std::string::npos);
  EXPECT_NE(what("old:\n  - path: a\n  - 3\n").find("key 'old[1]' expects a map, found '3'"), std::string::npos);
  EXPECT_NE(what(two, {"old.path=c"}).find("'old' is a list of 2 entries here; set the whole list"),
            std::string::npos);
  EXPECT_NE(what("compat:\n  method: bct\nold:\n  - path: a\n  - path: ''\n").find("config key 'old.1.path'"),
            std::string::npos);
  EXPECT_NE(what(two, {"old=[{path: a}, {path: b, weight: -1}]"}).find("config key 'old.1.weight': expected a weight >= 0"),
            std::string::npos);
  // The whole list can be replaced from the command line.
  const auto c = Config::from_string(two, {"old=[{path: x}, {path: y}, {path: z}]"});
  EXPECT_EQ(c.entries("old"), 3);
  EXPECT_EQ(c.get<std::string>("old.2.path"), "z");
}
