// The old model as an ONNX file, run forward-only by OpenCV DNN
// (cv::dnn::readNetFromONNX): the deployed model may come from any framework that
// exports ONNX. It is frozen by construction (no gradient exists), so it serves
// extraction, prototypes and compatible training like a TorchScript old model.
// Tensors cross as NCHW float32: the torch input is wrapped as a 4-D cv::Mat without a
// copy, the output Mat is copied into a torch tensor.
#include <opencv2/dnn.hpp>

#include <mutex>

#include "dualtune/models/exported_old_model.h"
#include "dualtune/util/error.h"

namespace dualtune::models {
namespace {

class OnnxOldModel : public ExportedOldModel {
 public:
  OnnxOldModel(const std::string& path, const std::string& class_map, const std::string& classifier_npy)
      : ExportedOldModel("ONNX", path, class_map, classifier_npy) {
    try {
      net_ = cv::dnn::readNetFromONNX(path);
    } catch (const cv::Exception& e) {
      DT_THROW("cannot load ONNX old model ", path, " (expected an ONNX model file): OpenCV DNN: ", e.msg);
    }
    DT_CHECK(!net_.empty(), "cannot load ONNX old model ", path, ": OpenCV DNN read an empty network");
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  }

  torch::Tensor embed(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor in = x.to(torch::kFloat).contiguous();
    const std::vector<int> sizes(in.sizes().begin(), in.sizes().end());
    cv::Mat out;
    {
      const std::lock_guard<std::mutex> lock(mu_);  // a cv::dnn::Net runs one forward at a time
      try {
        net_.setInput(cv::Mat(static_cast<int>(sizes.size()), sizes.data(), CV_32F, in.data_ptr<float>()));
        out = net_.forward().clone();
      } catch (const cv::Exception& e) {
        DT_THROW("ONNX old model ", path_, " failed on input ", x.sizes(), ": OpenCV DNN: ", e.msg);
      }
    }
    DT_CHECK(out.type() == CV_32F, "ONNX old model ", path_, " returned a non-float32 output (OpenCV type ",
             out.type(), ")");
    const std::vector<int64_t> shape(out.size.p, out.size.p + out.dims);
    return checked_embedding(torch::from_blob(out.ptr<float>(), shape, torch::kFloat).clone(), x.size(0));
  }

  /// The network's weights as OpenCV holds them (wrapped, not copied).
  std::vector<torch::Tensor> state() override {
    std::vector<torch::Tensor> s;
    for (const auto& name : net_.getLayerNames()) {
      for (auto& blob : net_.getLayer(name)->blobs) {
        if (blob.type() != CV_32F || blob.total() == 0) continue;
        s.push_back(torch::from_blob(blob.ptr<float>(), {static_cast<int64_t>(blob.total())}, torch::kFloat));
      }
    }
    return s;
  }

  std::string describe() const override { return "ONNX " + path_ + " via OpenCV DNN (" + classes_summary() + ")"; }

 private:
  cv::dnn::Net net_;
  std::mutex mu_;
};

}  // namespace

std::shared_ptr<OldModel> open_onnx_old_model(const std::string& path, const std::string& class_map,
                                              const std::string& classifier_npy) {
  return std::make_shared<OnnxOldModel>(path, class_map, classifier_npy);
}

}  // namespace dualtune::models
