#include "tapegrad/io/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/io/idx.hpp"

namespace tapegrad::io {
namespace {

bool integer_type(IdxType type) {
  return type == IdxType::UByte || type == IdxType::SByte || type == IdxType::Int16 ||
         type == IdxType::Int32;
}

// Copies the rows `indices` of a [N, F] row-major buffer and the matching labels.
Dataset gather_rows(const Dataset& data, std::span<const std::size_t> indices,
                    std::string_view op) {
  const std::size_t n = data.size();
  const std::size_t f = data.features();
  Values images(indices.size() * f);
  Values labels(indices.size());
  const std::span<const double> src_images = data.images().values();
  const std::span<const double> src_labels = data.labels().values();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const std::size_t row = indices[i];
    if (row >= n) {
      throw ValueError(
          fmt::format("{}: sample index {} is out of range for a dataset of {} samples{}", op, row,
                      n, n == 0 ? std::string() : fmt::format(" (valid indices 0..{})", n - 1)));
    }
    std::copy_n(src_images.begin() + static_cast<std::ptrdiff_t>(row * f), f,
                images.begin() + static_cast<std::ptrdiff_t>(i * f));
    labels[i] = src_labels[row];
  }
  const auto b = static_cast<std::int64_t>(indices.size());
  return Dataset(Tensor::from_values(std::move(images), Shape{b, static_cast<std::int64_t>(f)}),
                 Tensor::from_values(std::move(labels), Shape{b}));
}

}  // namespace

Dataset::Dataset() : images_(zeros(Shape{0, 0})), labels_(zeros(Shape{0})) {}

Dataset::Dataset(Tensor images, Tensor labels)
    : images_(std::move(images)), labels_(std::move(labels)) {
  if (!images_.defined() || !labels_.defined()) {
    throw ValueError("Dataset: images and labels must be defined tensors");
  }
  if (images_.rank() != 2 || labels_.rank() != 1 || images_.shape()[0] != labels_.shape()[0]) {
    throw ShapeError(fmt::format(
        "Dataset: expected images [N, F] and labels [N] ({} vs {}); images hold one flattened "
        "sample per row (reshape(images, {{N, -1}})) and labels one class index per sample",
        images_.shape(), labels_.shape()));
  }
}

Dataset Dataset::from_idx(const std::filesystem::path& images_path,
                          const std::filesystem::path& labels_path, double mean, double std) {
  if (!(std > 0.0) || !std::isfinite(std) || !std::isfinite(mean)) {
    throw ValueError(fmt::format(
        "Dataset::from_idx: normalisation needs a finite mean and a positive finite std "
        "(got mean {}, std {})",
        mean, std));
  }
  IdxData images = read_idx(images_path);
  if (images.type != IdxType::UByte) {
    throw FormatError(fmt::format(
        "Dataset::from_idx: {}: images must be unsigned bytes (IDX type 0x08), got type 0x{:02x}",
        images_path.string(), static_cast<unsigned>(images.type)));
  }
  if (images.shape.rank() < 2) {
    throw FormatError(
        fmt::format("Dataset::from_idx: {}: images must have shape [N, ...] with rank >= 2, got {}",
                    images_path.string(), images.shape));
  }
  IdxData labels = read_idx(labels_path);
  if (!integer_type(labels.type) || labels.shape.rank() != 1) {
    throw FormatError(fmt::format(
        "Dataset::from_idx: {}: labels must be integers of shape [N], got type 0x{:02x} and "
        "shape {}",
        labels_path.string(), static_cast<unsigned>(labels.type), labels.shape));
  }
  const std::int64_t n = images.shape[0];
  if (labels.shape[0] != n) {
    throw FormatError(fmt::format("Dataset::from_idx: {} holds {} images but {} holds {} labels",
                                  images_path.string(), n, labels_path.string(), labels.shape[0]));
  }
  // The values per sample. read_idx checked the whole element count, but with no images that
  // count is 0 whatever the other dimensions are, so their product needs its own check.
  std::int64_t features = 1;
  for (std::size_t d = 1; d < images.shape.rank(); ++d) {
    if (__builtin_mul_overflow(features, images.shape[d], &features)) {
      throw FormatError(fmt::format(
          "Dataset::from_idx: {}: dimensions {} overflow a 64-bit count of values per sample",
          images_path.string(), images.shape));
    }
  }
  const double inv_std = 1.0 / std;
  for (double& x : images.values) x = (x / 255.0 - mean) * inv_std;
  return Dataset(Tensor::from_values(std::move(images.values), Shape{n, features}),
                 Tensor::from_values(std::move(labels.values), Shape{n}));
}

Dataset Dataset::subset(std::size_t first_n) const {
  if (first_n > size()) {
    throw ValueError(fmt::format(
        "Dataset::subset: asked for the first {} samples of a dataset of {}", first_n, size()));
  }
  std::vector<std::size_t> indices(first_n);
  std::iota(indices.begin(), indices.end(), std::size_t{0});
  return gather_rows(*this, indices, "Dataset::subset");
}

Dataset Dataset::gather(std::span<const std::size_t> indices) const {
  return gather_rows(*this, indices, "Dataset::gather");
}

namespace {
// Where to get the files, for every message about a directory without them.
std::string fashion_mnist_hint() {
  return fmt::format(
      "pass the directory holding the four *-idx?-ubyte.gz files (the Debian package "
      "dataset-fashion-mnist installs them in {})",
      kFashionMnistDir);
}
}  // namespace

Dataset load_fashion_mnist(const std::filesystem::path& dir, Split split, double mean, double std) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    throw FormatError(fmt::format("load_fashion_mnist: {}: not a directory; {}", dir.string(),
                                  fashion_mnist_hint()));
  }
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const std::filesystem::path images_path = dir / (prefix + "-images-idx3-ubyte.gz");
  const std::filesystem::path labels_path = dir / (prefix + "-labels-idx1-ubyte.gz");
  for (const std::filesystem::path& file : {images_path, labels_path}) {
    if (!std::filesystem::exists(file, error)) {
      throw FormatError(fmt::format("load_fashion_mnist: {}: has no {}; {}", dir.string(),
                                    file.filename().string(), fashion_mnist_hint()));
    }
  }
  Dataset data = Dataset::from_idx(images_path, labels_path, mean, std);
  if (data.features() != std::size_t{28} * 28) {
    throw FormatError(
        fmt::format("load_fashion_mnist: {}: expected 28x28 images, got {} values each",
                    images_path.string(), data.features()));
  }
  const std::span<const double> labels = data.labels().values();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0.0 || labels[i] > 9.0) {
      throw FormatError(fmt::format("load_fashion_mnist: {}: label {} of sample {} is not in 0..9",
                                    labels_path.string(), labels[i], i));
    }
  }
  return data;
}

BatchLoader::BatchLoader(Dataset data, std::size_t batch_size, std::uint64_t seed, bool shuffle)
    : data_(std::move(data)), batch_size_(batch_size), shuffle_(shuffle), generator_(seed) {
  if (batch_size_ == 0) throw ValueError("BatchLoader: batch_size must be positive (got 0)");
  order_.resize(data_.size());
  std::iota(order_.begin(), order_.end(), std::size_t{0});
}

std::size_t BatchLoader::batches_per_epoch() const {
  return (data_.size() + batch_size_ - 1) / batch_size_;
}

void BatchLoader::start_epoch() {
  std::iota(order_.begin(), order_.end(), std::size_t{0});
  if (shuffle_) {
    // Fisher-Yates: position i takes a uniform pick among the not-yet-placed 0..i.
    for (std::size_t i = order_.size(); i > 1; --i) {
      const auto j = static_cast<std::size_t>(generator_.below(i));
      std::swap(order_[i - 1], order_[j]);
    }
  }
  position_ = 0;
  in_epoch_ = true;
  ++epoch_;
}

std::optional<Batch> BatchLoader::next() {
  if (!in_epoch_) start_epoch();
  if (position_ >= order_.size()) {
    in_epoch_ = false;
    return std::nullopt;
  }
  const std::size_t count = std::min(batch_size_, order_.size() - position_);
  const std::span<const std::size_t> indices(order_.data() + position_, count);
  position_ += count;
  Dataset rows = data_.gather(indices);
  return Batch{rows.images(), rows.labels(),
               std::vector<std::size_t>(indices.begin(), indices.end())};
}

}  // namespace tapegrad::io
