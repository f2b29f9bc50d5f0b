// The option structs that settings.h fills from a Config have the schema's defaults, so
// code that builds them without YAML computes what a default config computes.
#include <gtest/gtest.h>

#include "dualtune/config/config.h"
#include "dualtune/engine/objective.h"
#include "dualtune/engine/settings.h"
#include "dualtune/engine/trainer.h"
#include "dualtune/engine/transform_run.h"

namespace dualtune {
namespace {

// output_dir, threads and seed; config_hash is the default config's.
void expect_default_run(const engine::RunSettings& r) {
  const engine::RunSettings d;
  EXPECT_EQ(r.output_dir, d.output_dir);
  EXPECT_EQ(r.threads, d.threads);
  EXPECT_EQ(r.seed, d.seed);
  EXPECT_EQ(r.config_hash, config::Config().hash());
}

TEST(Settings, ObjectiveDefaultsAreTheSchemas) {
  const auto o = engine::objective_options(config::Config());
  const engine::ObjectiveOptions d;
  EXPECT_EQ(o.loss.type, d.loss.type);
  EXPECT_EQ(o.loss.weight, d.loss.weight);
  EXPECT_EQ(o.loss.label_smoothing, d.loss.label_smoothing);
  EXPECT_EQ(o.loss.scale, d.loss.scale);
  EXPECT_EQ(o.loss.margin, d.loss.margin);
  EXPECT_EQ(o.loss.triplet, d.loss.triplet);
  EXPECT_EQ(o.loss.triplet_margin, d.loss.triplet_margin);
  const auto &c = o.compat, &e = d.compat;
  EXPECT_EQ(c.method, e.method);
  EXPECT_EQ(c.l2_weight, e.l2_weight);
  EXPECT_EQ(c.bct_weight, e.bct_weight);
  EXPECT_EQ(c.bct_rescale, e.bct_rescale);
  EXPECT_EQ(c.proto_form, e.proto_form);
  EXPECT_EQ(c.proto_weight, e.proto_weight);
  EXPECT_EQ(c.proto_margin, e.proto_margin);
  EXPECT_EQ(c.proto_margin_unit, e.proto_margin_unit);
  EXPECT_EQ(c.proto_scale, e.proto_scale);
  EXPECT_EQ(c.prototypes, e.prototypes);
  EXPECT_EQ(c.n2o_weight, e.n2o_weight);
  EXPECT_EQ(c.n2o_extended, e.n2o_extended);
  EXPECT_EQ(c.o2n_weight, e.o2n_weight);
  EXPECT_EQ(c.mix_weight, e.mix_weight);
  EXPECT_EQ(c.mix_rho, e.mix_rho);
  EXPECT_EQ(c.contrast_weight, e.contrast_weight);
  EXPECT_EQ(c.contrast_temperature, e.contrast_temperature);
  EXPECT_EQ(c.contrast_new_negatives, e.contrast_new_negatives);
  ASSERT_EQ(o.old.size(), d.old.size());
  EXPECT_EQ(o.old[0].path, d.old[0].path);
  EXPECT_EQ(o.old[0].class_map, d.old[0].class_map);
  EXPECT_EQ(o.old[0].classifier, d.old[0].classifier);
  EXPECT_EQ(o.old[0].weight, d.old[0].weight);
  EXPECT_EQ(o.embedding_dim, d.embedding_dim);
  EXPECT_EQ(o.input.height, d.input.height);
  EXPECT_EQ(o.input.width, d.input.width);
  EXPECT_EQ(o.input.channels, d.input.channels);
  EXPECT_EQ(o.input.mean, d.input.mean);
  EXPECT_EQ(o.input.std, d.input.std);
  EXPECT_EQ(o.workers, d.workers);
}

TEST(Settings, TrainerDefaultsAreTheSchemas) {
  const auto s = engine::train_settings(config::Config());
  const engine::TrainSettings d;
  expect_default_run(s.run);
  EXPECT_EQ(s.log_every, d.log_every);
  EXPECT_EQ(s.test_accuracy, d.test_accuracy);
  EXPECT_EQ(s.optim.name, d.optim.name);
  EXPECT_EQ(s.optim.lr, d.optim.lr);
  EXPECT_EQ(s.optim.weight_decay, d.optim.weight_decay);
  EXPECT_EQ(s.optim.momentum, d.optim.momentum);
  EXPECT_EQ(s.optim.epochs, d.optim.epochs);
  EXPECT_EQ(s.optim.schedule, d.optim.schedule);
  EXPECT_EQ(s.optim.warmup_epochs, d.optim.warmup_epochs);
  EXPECT_EQ(s.optim.milestones, d.optim.milestones);
  EXPECT_EQ(s.optim.gamma, d.optim.gamma);
  EXPECT_EQ(s.optim.precision, d.optim.precision);
}

TEST(Settings, TransformRunDefaultsAreTheSchemas) {
  const auto o = engine::transform_run_options(config::Config());
  const engine::TransformRunOptions d;
  expect_default_run(o.run);
  EXPECT_EQ(o.workers, d.workers);
  EXPECT_EQ(o.augmented_passes, d.augmented_passes);
  EXPECT_EQ(o.side_info, d.side_info);
  EXPECT_EQ(o.side_dim, d.side_dim);
  EXPECT_EQ(o.width, d.width);
  EXPECT_EQ(o.depth, d.depth);
  EXPECT_EQ(o.fit.epochs, d.fit.epochs);
  EXPECT_EQ(o.fit.batch_size, d.fit.batch_size);
  EXPECT_EQ(o.fit.lr, d.fit.lr);
  EXPECT_EQ(o.fit.weight_decay, d.fit.weight_decay);
  EXPECT_EQ(o.fit.holdout, d.fit.holdout);
  EXPECT_EQ(o.fit.seed, d.fit.seed);
}

}  // namespace
}  // namespace dualtune
