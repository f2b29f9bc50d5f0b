#include "dualtune/models/transform_net.h"

#include "dualtune/util/error.h"

namespace dualtune::models {
namespace {

// Linear + BatchNorm1d + ReLU (ml-fct's ConvBlock on 1×1 inputs; no bias before BN).
void add_block(torch::nn::Sequential& seq, int64_t in, int64_t out) {
  seq->push_back(torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
  seq->push_back(torch::nn::BatchNorm1d(out));
  seq->push_back(torch::nn::ReLU());
}

}  // namespace

ForwardTransformImpl::ForwardTransformImpl(const ForwardTransformSpec& s) : spec(s) {
  DT_CHECK(s.old_dim > 0 && s.new_dim > 0 && s.side_dim >= 0 && s.width > 0 && s.depth >= 1,
           "forward transform: expected old_dim, new_dim, width > 0, side_dim >= 0 and depth >= 1, found old_dim ",
           s.old_dim, ", new_dim ", s.new_dim, ", side_dim ", s.side_dim, ", width ", s.width, ", depth ", s.depth);
  p1 = torch::nn::Sequential();
  add_block(p1, s.old_dim, 2 * s.old_dim);
  add_block(p1, 2 * s.old_dim, 2 * s.new_dim);
  register_module("p1", p1);
  int64_t mixed = 2 * s.new_dim;
  if (s.side_dim > 0) {
    p2 = torch::nn::Sequential();
    add_block(p2, s.side_dim, 2 * s.side_dim);
    add_block(p2, 2 * s.side_dim, 2 * s.new_dim);
    register_module("p2", p2);
    mixed += 2 * s.new_dim;
  }
  mixer = torch::nn::Sequential();
  add_block(mixer, mixed, s.width);
  for (int64_t i = 1; i < s.depth; ++i) add_block(mixer, s.width, s.width);
  mixer->push_back(torch::nn::Linear(s.width, s.new_dim));
  register_module("mixer", mixer);
}

torch::Tensor ForwardTransformImpl::forward(const torch::Tensor& old, const torch::Tensor& side) {
  DT_CHECK(old.dim() == 2 && old.size(1) == spec.old_dim, "forward transform: expected old embeddings B x ",
           spec.old_dim, ", found ", old.sizes());
  auto x = p1->forward(old);
  if (spec.side_dim > 0) {
    DT_CHECK(side.defined() && side.dim() == 2 && side.size(1) == spec.side_dim && side.size(0) == old.size(0),
             "forward transform: expected side information ", old.size(0), " x ", spec.side_dim, ", found ",
             side.defined() ? c10::str(side.sizes()) : std::string("none"));
    x = torch::cat({x, p2->forward(side)}, 1);
  }
  return mixer->forward(x);
}

}  // namespace dualtune::models
