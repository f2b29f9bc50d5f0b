// Loader: worker threads build whole batches (decode + transform) into a bounded
// window of `prefetch` batches; next() hands them out in batch order. Batch b of epoch
// e draws its augmentations from one generator seeded by (seed, e, b) and is built by
// exactly one thread, so the result does not depend on the number of workers.
#include "dualtune/data/loader.h"

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "dualtune/data/random.h"
#include "dualtune/data/sampler.h"
#include "dualtune/util/error.h"

namespace dualtune::data {

struct Loader::Impl {
  std::shared_ptr<const Dataset> dataset;
  TransformOptions transform;
  LoaderOptions opt;
  std::unique_ptr<Sampler> sampler;

  BatchList batches;
  int64_t epoch = -1;

  std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  int64_t produce = 0, consume = 0;  ///< next batch to build / to hand out
  bool stopping = false;
  std::map<int64_t, Batch> ready;
  std::map<int64_t, std::exception_ptr> failed;
  std::vector<std::thread> threads;

  int64_t count() const { return static_cast<int64_t>(batches.size()); }

  void build(int64_t b, Batch& out) const {
    const auto& items = batches[static_cast<size_t>(b)];
    std::mt19937_64 rng(derive_seed(opt.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(b)));
    const int64_t C = transform.channels, H = transform.height, W = transform.width;
    out.n = static_cast<int64_t>(items.size());
    out.c = C;
    out.h = H;
    out.w = W;
    out.images.assign(static_cast<size_t>(out.n * C * H * W), 0.0f);
    out.labels.clear();
    out.cameras.clear();
    out.indices.clear();
    for (size_t j = 0; j < items.size(); ++j) {
      const size_t i = static_cast<size_t>(items[j]);
      const Image img = dataset->image(i);
      try {
        apply_transform(img, transform, rng, out.images.data() + j * static_cast<size_t>(C * H * W));
      } catch (const Error& e) {
        DT_THROW("loader: item ", dataset->path(i), ": ", e.what());
      }
      out.labels.push_back(dataset->label(i));
      out.cameras.push_back(dataset->camera(i));
      out.indices.push_back(items[j]);
    }
  }

  void worker() {
    std::unique_lock<std::mutex> lk(mu);
    while (true) {
      work_cv.wait(lk, [&] { return stopping || produce >= count() || produce - consume < opt.prefetch; });
      if (stopping || produce >= count()) return;
      const int64_t b = produce++;
      lk.unlock();
      Batch batch;
      std::exception_ptr err;
      try {
        build(b, batch);
      } catch (...) {
        err = std::current_exception();
      }
      lk.lock();
      if (err) {
        failed[b] = err;
      } else {
        ready[b] = std::move(batch);
      }
      ready_cv.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
    }
    work_cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    stopping = false;
    ready.clear();
    failed.clear();
  }

  void start_workers() {
    produce = consume;
    const int64_t n = std::min<int64_t>(opt.workers, count() - consume);
    for (int64_t i = 0; i < n; ++i) threads.emplace_back([this] { worker(); });
  }
};

Loader::Loader(std::shared_ptr<const Dataset> dataset, TransformOptions transform, LoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  DT_CHECK(dataset != nullptr, "loader: no dataset");
  DT_CHECK(options.workers >= 0, "loader: expected workers >= 0, found ", options.workers);
  DT_CHECK(options.prefetch >= 1, "loader: expected prefetch >= 1, found ", options.prefetch);
  impl_->dataset = std::move(dataset);
  impl_->transform = std::move(transform);
  impl_->opt = options;
  if (options.sampler == "random") {
    impl_->sampler = std::make_unique<RandomSampler>(impl_->dataset->size(), options.batch_size, options.shuffle,
                                                     options.drop_last, options.seed, options.rank,
                                                     options.world_size);
  } else if (options.sampler == "pk") {
    std::vector<int64_t> labels(impl_->dataset->size());
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = impl_->dataset->label(i);
    impl_->sampler = std::make_unique<PKSampler>(labels, options.p, options.k, options.seed, options.rank,
                                                 options.world_size);
  } else {
    DT_THROW("loader: expected sampler random or pk, found '", options.sampler, "'");
  }
}

Loader::~Loader() {
  if (impl_) impl_->stop_workers();
}

void Loader::start_epoch(int64_t epoch) {
  impl_->stop_workers();
  impl_->batches = impl_->sampler->batches(epoch);
  impl_->epoch = epoch;
  impl_->consume = 0;
  impl_->start_workers();
}

bool Loader::next(Batch& out) {
  Impl& s = *impl_;
  if (s.epoch < 0) start_epoch(0);
  if (s.opt.workers == 0) {
    if (s.consume >= s.count()) return false;
    s.build(s.consume++, out);
    return true;
  }
  std::unique_lock<std::mutex> lk(s.mu);
  if (s.consume >= s.count()) return false;
  const int64_t b = s.consume;
  s.ready_cv.wait(lk, [&] { return s.ready.count(b) > 0 || s.failed.count(b) > 0; });
  ++s.consume;
  s.work_cv.notify_all();
  auto f = s.failed.find(b);
  if (f != s.failed.end()) {
    std::exception_ptr err = f->second;
    s.failed.erase(f);
    std::rethrow_exception(err);
  }
  auto r = s.ready.find(b);
  out = std::move(r->second);
  s.ready.erase(r);
  return true;
}

int64_t Loader::batches_per_epoch() const {
  if (impl_->epoch >= 0) return impl_->count();
  return static_cast<int64_t>(impl_->sampler->batches(0).size());
}

void Loader::skip(int64_t n) {
  Impl& s = *impl_;
  DT_CHECK(n >= 0, "loader: expected a number of batches to skip >= 0, found ", n);
  if (s.epoch < 0) start_epoch(0);
  s.stop_workers();
  s.consume = std::min(s.count(), s.consume + n);
  s.start_workers();
}

}  // namespace dualtune::data
