#pragma once
// In-memory datasets of (image, label) pairs and a mini-batch loader with seeded shuffling.
//
//   auto train = tapegrad::io::load_fashion_mnist(tapegrad::io::kFashionMnistDir,
//                                                 tapegrad::io::Split::Train,
//                                                 tapegrad::io::kFashionMnistMean,
//                                                 tapegrad::io::kFashionMnistStd);
//   tapegrad::io::BatchLoader loader(train.subset(10000), /*batch_size=*/64, /*seed=*/42);
//   for (int epoch = 0; epoch < 5; ++epoch) {
//     while (auto batch = loader.next()) {  // batch->images [B, 784], batch->labels [B]
//       ...
//     }  // next() returned nullopt: the epoch is over; the next call starts a new one
//   }
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/error.hpp"

namespace tapegrad::io {

// Where the Debian package dataset-fashion-mnist installs the four .gz files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// Mean and standard deviation of the Fashion-MNIST training pixels scaled to [0, 1]
// (population statistics over all 60000 x 784 values), for load_fashion_mnist's normalisation.
inline constexpr double kFashionMnistMean = 0.28604059698879547;
inline constexpr double kFashionMnistStd = 0.35302424451492254;

enum class Split { Train, Test };

// N samples: images [N, F] (one flattened sample per row) and labels [N] (class indices stored as
// doubles, what cross_entropy takes). Copies share the tensors (they are handles).
class Dataset {
 public:
  Dataset();  // no samples: images [0, 0], labels [0]
  // ShapeError unless images is [N, F] and labels is [N].
  Dataset(Tensor images, Tensor labels);

  // Reads an IDX image file (ubyte, [N, d1, d2, ...], flattened to [N, d1*d2*...]) and an IDX
  // label file (an integer type, [N]). Pixels are scaled to [0, 1] and then normalised:
  // x = (pixel / 255 - mean) / std. FormatError naming the file when a file is malformed, is of
  // the wrong type or rank, when the sample counts of the two files differ, or when d1*d2*...
  // overflows 64 bits (possible only with N = 0; otherwise read_idx refuses the file); ValueError
  // when std is not positive and finite. With N = 0 the images are [0, d1*d2*...].
  static Dataset from_idx(const std::filesystem::path& images_path,
                          const std::filesystem::path& labels_path, double mean = 0.0,
                          double std = 1.0);

  std::size_t size() const { return labels_.numel(); }
  std::size_t features() const { return static_cast<std::size_t>(images_.shape()[1]); }
  const Tensor& images() const { return images_; }  // [N, F]
  const Tensor& labels() const { return labels_; }  // [N]

  // The first `first_n` samples (copied); ValueError when first_n > size().
  Dataset subset(std::size_t first_n) const;
  // The samples at `indices`, in that order (copied); ValueError for an index >= size().
  Dataset gather(std::span<const std::size_t> indices) const;

 private:
  Tensor images_;
  Tensor labels_;
};

// Fashion-MNIST from `dir` holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz: images [N, 784] normalised as in
// Dataset::from_idx, labels [N] in 0..9 (N = 60000 for Train, 10000 for Test). FormatError naming
// the file when one is malformed, the images are not 28x28, or a label is not in 0..9; when `dir`
// is not a directory or lacks the split's two files, the FormatError says where the Debian
// package dataset-fashion-mnist installs them.
Dataset load_fashion_mnist(const std::filesystem::path& dir, Split split, double mean = 0.0,
                           double std = 1.0);

// One mini-batch: images [B, F], labels [B], and which samples of the dataset they are.
struct Batch {
  Tensor images;
  Tensor labels;
  std::vector<std::size_t> indices;
};

// Yields the dataset in mini-batches of `batch_size` samples; the last batch of an epoch holds
// the remainder (size() % batch_size samples) when the size is not a multiple. With shuffling,
// every epoch visits the samples in a fresh permutation (Fisher-Yates over 0..N-1 drawn from a
// Generator seeded with `seed`), so the same seed gives the same batches, epoch after epoch;
// without shuffling the order is 0..N-1. Every sample appears exactly once per epoch.
class BatchLoader {
 public:
  // ValueError when batch_size is 0. The loader keeps a copy of the dataset handle.
  BatchLoader(Dataset data, std::size_t batch_size, std::uint64_t seed, bool shuffle = true);

  // The next mini-batch of the current epoch, or nullopt when the epoch is over. The call after
  // a nullopt starts the next epoch (reshuffled), so `while (auto b = loader.next())` is one
  // epoch.
  std::optional<Batch> next();

  std::size_t batch_size() const { return batch_size_; }
  // Batches per epoch: ceil(size / batch_size).
  std::size_t batches_per_epoch() const;
  // Epochs started so far (0 before the first next()).
  std::size_t epoch() const { return epoch_; }
  // The sample order of the current epoch (identity before the first next()).
  const std::vector<std::size_t>& order() const { return order_; }
  const Dataset& dataset() const { return data_; }

 private:
  void start_epoch();

  Dataset data_;
  std::size_t batch_size_;
  bool shuffle_;
  Generator generator_;
  std::vector<std::size_t> order_;
  std::size_t position_ = 0;
  std::size_t epoch_ = 0;
  bool in_epoch_ = false;
};

}  // namespace tapegrad::io
