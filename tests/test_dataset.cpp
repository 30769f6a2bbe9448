// Dataset: IDX-backed datasets, subsets, and the mini-batch loader (deterministic per seed, every
// sample exactly once per epoch, last partial batch kept); plus the real Fashion-MNIST when the
// Debian package dataset-fashion-mnist is installed.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/dataset.hpp"

namespace {

namespace fs = std::filesystem;
using tapegrad::Shape;
using tapegrad::Tensor;
using tapegrad::io::Batch;
using tapegrad::io::BatchLoader;
namespace io = tapegrad::io;
using tapegrad::io::FormatError;
using Bytes = std::vector<unsigned char>;

// n samples with 3 features; sample i is the row (i, i + 0.5, -i) with label i, so a batch
// row and its label can be checked against each other.
io::Dataset numbered(std::size_t n) {
  std::vector<double> images;
  std::vector<double> labels;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<double>(i);
    images.insert(images.end(), {x, x + 0.5, -x});
    labels.push_back(x);
  }
  const auto rows = static_cast<std::int64_t>(n);
  return io::Dataset(tapegrad::from_values(images, {rows, 3}),
                     tapegrad::from_values(labels, {rows}));
}

// Runs one epoch; checks each batch's shapes and row/label agreement; returns labels in order.
std::vector<std::size_t> run_epoch(BatchLoader& loader,
                                   std::vector<std::size_t>* batch_sizes = nullptr) {
  std::vector<std::size_t> seen;
  while (auto batch = loader.next()) {
    const std::size_t b = batch->labels.numel();
    EXPECT_EQ(batch->images.shape(), (Shape{static_cast<std::int64_t>(b), 3}));
    EXPECT_EQ(batch->labels.shape(), (Shape{static_cast<std::int64_t>(b)}));
    EXPECT_EQ(batch->indices.size(), b);
    for (std::size_t r = 0; r < b; ++r) {
      const double label = batch->labels.values()[r];
      EXPECT_EQ(batch->images.values()[3 * r], label);
      EXPECT_EQ(batch->images.values()[3 * r + 2], -label);
      EXPECT_EQ(static_cast<double>(batch->indices[r]), label);
      seen.push_back(static_cast<std::size_t>(label));
    }
    if (batch_sizes != nullptr) batch_sizes->push_back(b);
  }
  return seen;
}

bool is_permutation_of_range(std::vector<std::size_t> v, std::size_t n) {
  std::sort(v.begin(), v.end());
  std::vector<std::size_t> range(n);
  std::iota(range.begin(), range.end(), std::size_t{0});
  return v == range;
}

class Dataset : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tapegrad_ds_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // An IDX file (gzip when the name ends in .gz).
  fs::path write_idx(const std::string& name, std::uint8_t type,
                     const std::vector<std::uint32_t>& dims, const Bytes& payload) {
    Bytes bytes = {0, 0, type, static_cast<unsigned char>(dims.size())};
    for (std::uint32_t d : dims) {
      for (int shift = 24; shift >= 0; shift -= 8)
        bytes.push_back(static_cast<unsigned char>(d >> shift));
    }
    bytes.insert(bytes.end(), payload.begin(), payload.end());
    fs::path path = dir_ / name;
    if (path.extension() == ".gz") {
      gzFile gz = gzopen(path.c_str(), "wb");
      EXPECT_NE(gz, nullptr);
      EXPECT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
                static_cast<int>(bytes.size()));
      gzclose(gz);
    } else {
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    }
    return path;
  }

  fs::path dir_;
};

TEST_F(Dataset, LoaderCoversEverySampleOncePerEpochWithPartialLastBatch) {
  BatchLoader loader(numbered(10), 3, /*seed=*/7);
  EXPECT_EQ(loader.batches_per_epoch(), 4u);
  EXPECT_EQ(loader.epoch(), 0u);
  for (std::size_t epoch = 1; epoch <= 3; ++epoch) {
    std::vector<std::size_t> sizes;
    const std::vector<std::size_t> seen = run_epoch(loader, &sizes);
    EXPECT_EQ(loader.epoch(), epoch);
    EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 3, 1}));
    EXPECT_TRUE(is_permutation_of_range(seen, 10));
    EXPECT_EQ(seen, loader.order());
  }
}

TEST_F(Dataset, LoaderShufflesDeterministicallyPerSeed) {
  const io::Dataset data = numbered(50);
  BatchLoader a(data, 8, 42);
  BatchLoader b(data, 8, 42);
  BatchLoader c(data, 8, 43);
  const auto a1 = run_epoch(a);
  const auto a2 = run_epoch(a);
  EXPECT_EQ(a1, run_epoch(b));
  EXPECT_EQ(a2, run_epoch(b));
  EXPECT_NE(a1, a2) << "each epoch reshuffles";
  EXPECT_NE(a1, run_epoch(c)) << "another seed, another order";
  std::vector<std::size_t> identity(50);
  std::iota(identity.begin(), identity.end(), std::size_t{0});
  EXPECT_NE(a1, identity);
  // The batch size only slices the permutation: the order depends on the seed alone.
  BatchLoader d(data, 50, 42);
  EXPECT_EQ(run_epoch(d), a1);
}

TEST_F(Dataset, LoaderFisherYatesUsesGeneratorBelow) {
  // The documented algorithm, replayed by hand with the same generator.
  BatchLoader loader(numbered(20), 6, 2024);
  const auto seen = run_epoch(loader);
  tapegrad::Generator generator(2024);
  std::vector<std::size_t> order(20);
  std::iota(order.begin(), order.end(), std::size_t{0});
  for (std::size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[static_cast<std::size_t>(generator.below(i))]);
  }
  EXPECT_EQ(seen, order);
}

TEST_F(Dataset, LoaderWithoutShufflingKeepsOrder) {
  BatchLoader loader(numbered(7), 2, 1, /*shuffle=*/false);
  std::vector<std::size_t> sizes;
  const auto seen = run_epoch(loader, &sizes);
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 2, 2, 1}));
  EXPECT_EQ(run_epoch(loader), seen);
}

TEST_F(Dataset, LoaderEdgeCases) {
  // Batch larger than the dataset: one batch of everything.
  BatchLoader big(numbered(5), 64, 3);
  std::vector<std::size_t> sizes;
  EXPECT_TRUE(is_permutation_of_range(run_epoch(big, &sizes), 5));
  EXPECT_EQ(sizes, (std::vector<std::size_t>{5}));
  // Exact multiple: no empty trailing batch.
  BatchLoader exact(numbered(6), 3, 3);
  sizes.clear();
  run_epoch(exact, &sizes);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3}));
  // Empty dataset: every epoch is empty.
  BatchLoader empty(io::Dataset(), 4, 3);
  EXPECT_EQ(empty.batches_per_epoch(), 0u);
  EXPECT_FALSE(empty.next().has_value());
  EXPECT_FALSE(empty.next().has_value());
  // Batch size 0 is a mistake.
  EXPECT_THROW(BatchLoader(numbered(3), 0, 1), tapegrad::ValueError);
}

TEST_F(Dataset, BatchesAreLeavesNotSharingTheDataset) {
  const io::Dataset data = numbered(4);
  BatchLoader loader(data, 2, 5, false);
  auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_TRUE(batch->images.is_leaf());
  EXPECT_FALSE(batch->images.requires_grad());
  batch->images.mutable_values()[0] = 99.0;
  EXPECT_EQ(data.images().at({0, 0}), 0.0);
}

TEST_F(Dataset, SubsetAndGather) {
  const io::Dataset data = numbered(10);
  const io::Dataset first = data.subset(4);
  EXPECT_EQ(first.size(), 4u);
  EXPECT_EQ(first.features(), 3u);
  EXPECT_EQ(first.images().shape(), (Shape{4, 3}));
  EXPECT_EQ(first.labels().at({3}), 3.0);
  EXPECT_EQ(first.images().at({3, 1}), 3.5);
  EXPECT_EQ(data.subset(0).size(), 0u);
  EXPECT_EQ(data.subset(10).size(), 10u);
  EXPECT_THROW((void)data.subset(11), tapegrad::ValueError);
  const std::array<std::size_t, 3> picks = {9, 0, 9};
  const io::Dataset picked = data.gather(picks);
  EXPECT_EQ(picked.labels().at({0}), 9.0);
  EXPECT_EQ(picked.labels().at({1}), 0.0);
  const std::array<std::size_t, 1> bad = {10};
  EXPECT_THROW((void)data.gather(bad), tapegrad::ValueError);
}

TEST_F(Dataset, ConstructorChecksShapes) {
  EXPECT_THROW(io::Dataset(tapegrad::zeros({4, 3}), tapegrad::zeros({5})), tapegrad::ShapeError);
  EXPECT_THROW(io::Dataset(tapegrad::zeros({4}), tapegrad::zeros({4})), tapegrad::ShapeError);
  EXPECT_THROW(io::Dataset(tapegrad::zeros({4, 3}), tapegrad::zeros({4, 1})), tapegrad::ShapeError);
  EXPECT_THROW(io::Dataset(Tensor(), tapegrad::zeros({4})), tapegrad::ValueError);
}

TEST_F(Dataset, FromIdxScalesAndNormalises) {
  const auto images =
      write_idx("img.idx", 0x08, {3, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8});
  const auto labels = write_idx("lbl.idx", 0x08, {3}, {2, 0, 1});
  const io::Dataset data = io::Dataset::from_idx(images, labels, 0.5, 0.25);
  EXPECT_EQ(data.images().shape(), (Shape{3, 4}));
  EXPECT_EQ(data.labels().shape(), (Shape{3}));
  EXPECT_DOUBLE_EQ(data.images().at({0, 0}), (0.0 - 0.5) / 0.25);
  EXPECT_DOUBLE_EQ(data.images().at({0, 1}), (1.0 - 0.5) / 0.25);
  EXPECT_DOUBLE_EQ(data.images().at({0, 2}), (0.2 - 0.5) / 0.25);
  EXPECT_EQ(data.labels().at({0}), 2.0);
  // Without normalisation the pixels are in [0, 1].
  const io::Dataset plain = io::Dataset::from_idx(images, labels);
  EXPECT_EQ(plain.images().at({0, 1}), 1.0);
  EXPECT_EQ(plain.images().at({0, 0}), 0.0);
  EXPECT_THROW((void)io::Dataset::from_idx(images, labels, 0.0, 0.0), tapegrad::ValueError);
  EXPECT_THROW((void)io::Dataset::from_idx(images, labels, 0.0, -1.0), tapegrad::ValueError);
}

TEST_F(Dataset, FromIdxRejectsMismatchedFiles) {
  const auto images = write_idx("img.idx", 0x08, {3, 2, 2}, Bytes(12, 1));
  const auto labels4 = write_idx("lbl4.idx", 0x08, {4}, Bytes(4, 1));
  try {
    (void)io::Dataset::from_idx(images, labels4);
    ADD_FAILURE() << "accepted 3 images with 4 labels";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(images.string()), std::string::npos) << message;
    EXPECT_NE(message.find(labels4.string()), std::string::npos) << message;
  }
  const auto float_images = write_idx("fimg.idx", 0x0D, {1, 1}, Bytes(4, 0));
  const auto labels1 = write_idx("lbl1.idx", 0x08, {1}, Bytes{0});
  EXPECT_THROW((void)io::Dataset::from_idx(float_images, labels1), FormatError);
  const auto flat_images = write_idx("flat.idx", 0x08, {3}, Bytes(3, 0));
  EXPECT_THROW((void)io::Dataset::from_idx(flat_images, labels4), FormatError);
  const auto matrix_labels = write_idx("lblm.idx", 0x08, {3, 1}, Bytes(3, 0));
  EXPECT_THROW((void)io::Dataset::from_idx(images, matrix_labels), FormatError);
}

TEST_F(Dataset, LoadFashionMnistReadsTheDebianFileNames) {
  Bytes pixels(std::size_t{2} * 28 * 28, 0);
  pixels[std::size_t{28} * 28] = 255;  // first pixel of the second image
  write_idx("t10k-images-idx3-ubyte.gz", 0x08, {2, 28, 28}, pixels);
  write_idx("t10k-labels-idx1-ubyte.gz", 0x08, {2}, {9, 0});
  const io::Dataset test = tapegrad::io::load_fashion_mnist(dir_, tapegrad::io::Split::Test);
  EXPECT_EQ(test.images().shape(), (Shape{2, 784}));
  EXPECT_EQ(test.images().at({1, 0}), 1.0);
  EXPECT_EQ(test.labels().at({0}), 9.0);

  // The train split is missing here: the error names the file it looked for.
  try {
    (void)tapegrad::io::load_fashion_mnist(dir_, tapegrad::io::Split::Train);
    ADD_FAILURE() << "loaded a missing split";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("train-images-idx3-ubyte.gz"), std::string::npos)
        << e.what();
  }
  // A label outside 0..9.
  write_idx("train-images-idx3-ubyte.gz", 0x08, {2, 28, 28}, pixels);
  write_idx("train-labels-idx1-ubyte.gz", 0x08, {2}, {3, 10});
  EXPECT_THROW((void)tapegrad::io::load_fashion_mnist(dir_, tapegrad::io::Split::Train),
               FormatError);
  // Images that are not 28x28.
  write_idx("train-images-idx3-ubyte.gz", 0x08, {2, 27, 28}, Bytes(std::size_t{2} * 27 * 28, 0));
  write_idx("train-labels-idx1-ubyte.gz", 0x08, {2}, {3, 4});
  EXPECT_THROW((void)tapegrad::io::load_fashion_mnist(dir_, tapegrad::io::Split::Train),
               FormatError);
}

TEST_F(Dataset, RealFashionMnist) {
  const fs::path dir = tapegrad::io::kFashionMnistDir;
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << dir
                 << " (apt-get install dataset-fashion-mnist)";
  }
  const double mean = tapegrad::io::kFashionMnistMean;
  const double std = tapegrad::io::kFashionMnistStd;
  for (const auto& [split, n] : {std::pair{tapegrad::io::Split::Train, std::size_t{60000}},
                                 std::pair{tapegrad::io::Split::Test, std::size_t{10000}}}) {
    const io::Dataset data = tapegrad::io::load_fashion_mnist(dir, split, mean, std);
    ASSERT_EQ(data.size(), n);
    EXPECT_EQ(data.images().shape(), (Shape{static_cast<std::int64_t>(n), 784}));
    std::array<std::size_t, 10> per_class{};
    for (double label : data.labels().values()) {
      ASSERT_EQ(label, std::floor(label));
      ASSERT_GE(label, 0.0);
      ASSERT_LE(label, 9.0);
      ++per_class[static_cast<std::size_t>(label)];
    }
    for (std::size_t count : per_class) EXPECT_EQ(count, n / 10);  // Fashion-MNIST is balanced
    // Normalised pixels: within [(0 - mean) / std, (1 - mean) / std]; for the training split the
    // constants are its own statistics, so the mean is 0 and the deviation 1.
    const auto values = data.images().values();
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    EXPECT_DOUBLE_EQ(*lo, -mean / std);
    EXPECT_DOUBLE_EQ(*hi, (1.0 - mean) / std);
    if (split == tapegrad::io::Split::Train) {
      double sum = 0.0;
      double sum_sq = 0.0;
      for (double v : values) {
        sum += v;
        sum_sq += v * v;
      }
      const double m = sum / static_cast<double>(values.size());
      EXPECT_NEAR(m, 0.0, 1e-9);
      EXPECT_NEAR(sum_sq / static_cast<double>(values.size()) - m * m, 1.0, 1e-9);
    }
    // A shuffled epoch over the real data covers every sample once.
    BatchLoader loader(data.subset(1000), 128, 1);
    std::vector<bool> seen(1000, false);
    std::size_t batches = 0;
    while (auto batch = loader.next()) {
      ++batches;
      EXPECT_EQ(batch->images.shape()[1], 784);
      for (std::size_t index : batch->indices) {
        EXPECT_FALSE(seen[index]);
        seen[index] = true;
      }
    }
    EXPECT_EQ(batches, 8u);
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
  }
}

}  // namespace
