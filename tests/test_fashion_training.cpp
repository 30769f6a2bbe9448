// A short real training run: 1,000 Fashion-MNIST images, a small MLP, Adam. Chance is 0.10;
// after a few epochs the test accuracy must be far above it. Needs the Debian package
// dataset-fashion-mnist (./scripts/test installs it); skips with the reason when it is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <tapegrad/io/dataset.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

const std::filesystem::path data_dir = "/usr/share/datasets/fashion-mnist";

double accuracy(tg::nn::Module& model, const tg::io::Dataset& data) {
  tg::NoGradGuard no_grad;
  const tg::Tensor logits = model(data.images());
  const auto z = logits.values();
  const auto y = data.labels().values();
  std::size_t correct = 0;
  for (std::size_t n = 0; n < y.size(); ++n) {
    const double* row = z.data() + n * 10;
    correct += static_cast<double>(std::max_element(row, row + 10) - row) == y[n];
  }
  return static_cast<double>(correct) / static_cast<double>(y.size());
}

}  // namespace

TEST(FashionTraining, ThousandImagesLearnFarAboveChance) {
  if (!std::filesystem::exists(data_dir / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << data_dir
                 << " (apt-get install dataset-fashion-mnist)";
  }
  const auto train = tg::io::load_fashion_mnist(data_dir, tg::io::Split::Train,
                                                tg::io::kFashionMnistMean, tg::io::kFashionMnistStd)
                         .subset(1000);
  const auto test = tg::io::load_fashion_mnist(data_dir, tg::io::Split::Test,
                                               tg::io::kFashionMnistMean, tg::io::kFashionMnistStd)
                        .subset(1000);
  tg::Generator generator(7);
  auto model = tg::nn::MLP({784, 64, 10}, tg::nn::Activation::relu, generator);
  tg::nn::Adam optimizer(model->parameters(), {.lr = 2e-3});
  const double before = accuracy(*model, test);
  tg::io::BatchLoader loader(train, 50, 7);
  double first_loss = 0.0, last_loss = 0.0;
  for (int epoch = 0; epoch < 5; ++epoch) {
    while (auto batch = loader.next()) {
      tg::Tape tape;
      const tg::Tensor loss =
          tg::nn::cross_entropy_with_logits((*model)(batch->images), batch->labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      if (first_loss == 0.0) first_loss = loss.item();
      last_loss = loss.item();
    }
  }
  const double after = accuracy(*model, test);
  EXPECT_LT(before, 0.3) << "an untrained network should be near chance";
  EXPECT_GT(after, 0.65) << "after 5 epochs on 1,000 images (chance is 0.10)";
  EXPECT_LT(last_loss, 0.5 * first_loss);
}
