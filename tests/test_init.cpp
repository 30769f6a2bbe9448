// Initialisers: over tens of thousands of draws, each initialiser's sample mean and variance
// match its formula (init.hpp) within a few standard errors; the same seed gives the same values
// bit for bit and different seeds different values.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/init.hpp"

namespace {

using tapegrad::Generator;
using tapegrad::Shape;
using tapegrad::Tensor;
namespace init = tapegrad::nn::init;

struct Moments {
  double mean = 0.0;
  double variance = 0.0;
  double largest_magnitude = 0.0;
};

Moments MomentsOf(const Tensor& t) {
  Moments m;
  const auto v = t.values();
  const double n = static_cast<double>(v.size());
  for (double x : v) m.mean += x / n;
  for (double x : v) {
    m.variance += (x - m.mean) * (x - m.mean) / (n - 1.0);
    m.largest_magnitude = std::max(m.largest_magnitude, std::abs(x));
  }
  return m;
}

// The sample mean has standard error sigma / sqrt(n) and the sample variance at most
// sigma^2 sqrt(2 / n) (the normal's; a uniform's is smaller). Five standard errors: a false
// alarm about once in 1.7 million runs, and the seeds are fixed anyway.
void ExpectMoments(const Tensor& t, double expected_variance, const std::string& what) {
  const Moments m = MomentsOf(t);
  const double n = static_cast<double>(t.numel());
  EXPECT_NEAR(m.mean, 0.0, 5.0 * std::sqrt(expected_variance / n)) << what;
  EXPECT_NEAR(m.variance, expected_variance, 5.0 * expected_variance * std::sqrt(2.0 / n)) << what;
}

// fan_in 200, fan_out 300, 60000 draws.
const Shape kWeight{300, 200};
constexpr double kFanIn = 200.0;
constexpr double kFanOut = 300.0;

TEST(Initialisers, XavierUniformVarianceAndBound) {
  Generator gen(1);
  const double gain = init::calculate_gain(init::Nonlinearity::tanh);
  const Tensor w = init::xavier_uniform(tapegrad::zeros(kWeight), gen, gain);
  // bound = gain sqrt(6 / (fan_in + fan_out)); variance = bound^2 / 3 = gain^2 2 / (in + out)
  const double bound = gain * std::sqrt(6.0 / (kFanIn + kFanOut));
  ExpectMoments(w, gain * gain * 2.0 / (kFanIn + kFanOut), "xavier_uniform");
  EXPECT_LE(MomentsOf(w).largest_magnitude, bound);
  EXPECT_GT(MomentsOf(w).largest_magnitude, 0.999 * bound);
}

TEST(Initialisers, XavierNormalVariance) {
  Generator gen(2);
  const Tensor w = init::xavier_normal(tapegrad::zeros(kWeight), gen);
  // std = sqrt(2 / (fan_in + fan_out))
  ExpectMoments(w, 2.0 / (kFanIn + kFanOut), "xavier_normal");
}

TEST(Initialisers, KaimingUniformDefaultIsRelu) {
  Generator gen(3);
  const Tensor w = init::kaiming_uniform(tapegrad::zeros(kWeight), gen);
  // gain sqrt(2), fan_in: bound = sqrt(2) sqrt(3 / fan_in); variance = 2 / fan_in
  ExpectMoments(w, 2.0 / kFanIn, "kaiming_uniform");
  EXPECT_LE(MomentsOf(w).largest_magnitude, std::sqrt(2.0) * std::sqrt(3.0 / kFanIn));
}

TEST(Initialisers, KaimingUniformLinearDefault) {
  Generator gen(4);
  const Tensor w = init::kaiming_uniform(tapegrad::zeros(kWeight), gen, {.a = std::sqrt(5.0)});
  // gain^2 = 2 / (1 + 5) = 1/3: bound = sqrt(1/3) sqrt(3 / fan_in) = 1 / sqrt(fan_in)
  const double bound = 1.0 / std::sqrt(kFanIn);
  ExpectMoments(w, bound * bound / 3.0, "kaiming_uniform(a = sqrt(5))");
  EXPECT_LE(MomentsOf(w).largest_magnitude, bound);
}

TEST(Initialisers, KaimingNormalFanInAndFanOut) {
  Generator gen(5);
  const Tensor in = init::kaiming_normal(tapegrad::zeros(kWeight), gen);
  ExpectMoments(in, 2.0 / kFanIn, "kaiming_normal fan_in");  // std = sqrt(2) / sqrt(fan_in)
  const Tensor out =
      init::kaiming_normal(tapegrad::zeros(kWeight), gen, {.mode = init::FanMode::fan_out});
  ExpectMoments(out, 2.0 / kFanOut, "kaiming_normal fan_out");
  const Tensor tanh = init::kaiming_normal(tapegrad::zeros(kWeight), gen,
                                           {.nonlinearity = init::Nonlinearity::tanh});
  ExpectMoments(tanh, 25.0 / 9.0 / kFanIn, "kaiming_normal tanh");  // gain 5/3
}

TEST(Initialisers, ConvolutionFansIncludeTheKernel) {
  Generator gen(6);
  // [out 64, in 32, 5, 5]: fan_in = 32 * 25 = 800, fan_out = 64 * 25 = 1600.
  const Tensor w = init::xavier_normal(tapegrad::zeros({64, 32, 5, 5}), gen);
  ExpectMoments(w, 2.0 / (800.0 + 1600.0), "xavier_normal conv");
  const Tensor k = init::kaiming_normal(tapegrad::zeros({64, 32, 5, 5}), gen);
  ExpectMoments(k, 2.0 / 800.0, "kaiming_normal conv");
}

TEST(Initialisers, GainsAsPyTorch) {
  EXPECT_EQ(init::calculate_gain(init::Nonlinearity::linear), 1.0);
  EXPECT_EQ(init::calculate_gain(init::Nonlinearity::sigmoid), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::leaky_relu),
                   std::sqrt(2.0 / (1.0 + 0.01 * 0.01)));
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::leaky_relu, 0.2),
                   std::sqrt(2.0 / 1.04));
}

using Initialiser = std::function<Tensor(Tensor, Generator&)>;

std::vector<std::pair<std::string, Initialiser>> Initialisers() {
  return {
      {"xavier_uniform", [](Tensor t, Generator& g) { return init::xavier_uniform(t, g); }},
      {"xavier_normal", [](Tensor t, Generator& g) { return init::xavier_normal(t, g); }},
      {"kaiming_uniform", [](Tensor t, Generator& g) { return init::kaiming_uniform(t, g); }},
      {"kaiming_normal", [](Tensor t, Generator& g) { return init::kaiming_normal(t, g); }},
  };
}

TEST(Initialisers, SameSeedSameBitsOtherSeedOtherValues) {
  for (const auto& [name, fill] : Initialisers()) {
    Generator a(42), b(42), c(43);
    const Tensor first = fill(tapegrad::zeros({20, 30}), a);
    const Tensor again = fill(tapegrad::zeros({20, 30}), b);
    const Tensor other = fill(tapegrad::zeros({20, 30}), c);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < first.numel(); ++i) {
      // Bit-identical: compared with ==, not within a tolerance.
      ASSERT_EQ(first.values()[i], again.values()[i]) << name << " element " << i;
      if (first.values()[i] != other.values()[i]) ++differing;
    }
    EXPECT_EQ(differing, first.numel()) << name;
  }
}

TEST(Initialisers, FillsInPlaceAndKeepsTheHandle) {
  Generator gen(7);
  Tensor w = tapegrad::zeros({3, 4}).requires_grad_();
  const Tensor returned = init::xavier_uniform(w, gen);
  EXPECT_TRUE(returned.same(w));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_NE(w.values()[0], 0.0);
  init::constant(w, 0.25);
  for (double v : w.values()) EXPECT_EQ(v, 0.25);
  init::zeros(w);
  for (double v : w.values()) EXPECT_EQ(v, 0.0);
}

TEST(Initialisers, NeedTwoDimensionsForFans) {
  Generator gen(8);
  for (const auto& [name, fill] : Initialisers()) {
    EXPECT_THROW(fill(tapegrad::zeros({5}), gen), tapegrad::ShapeError) << name;
    EXPECT_THROW(fill(tapegrad::scalar(0.0), gen), tapegrad::ShapeError) << name;
  }
  try {
    init::kaiming_uniform(tapegrad::zeros({5}), gen);
    ADD_FAILURE() << "no ShapeError";
  } catch (const tapegrad::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("kaiming_uniform"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[5]"), std::string::npos) << e.what();
  }
}

}  // namespace
