// SeedClosedForm: every derivative the seed document (and its NOTES.md) states, checked against
// the tape. Each test draws inputs, weights and targets from a seeded Generator (>= 100 draws),
// records the forward pass, runs backward (or tapegrad::grad), and compares the gradients the
// engine finds with the closed form, computed here in plain doubles, to a relative 1e-10.
// The derivations are written out in docs/derivations.md, which names these tests.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <functional>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using tapegrad::Generator;
using tapegrad::Shape;
using tapegrad::Tape;
using tapegrad::Tensor;
using tapegrad::nn::Reduction;
namespace nn = tapegrad::nn;

constexpr int kDraws = 100;
constexpr double kTol = 1e-10;       // tape vs closed form
constexpr double kFusedTol = 1e-12;  // fused loss vs its composition

// ---------------------------------------------------------------------------------------------
// Comparison helpers: |a - b| <= tol * max(1, |b|), b the reference. NaN never passes.

bool IsClose(double actual, double expected, double tol = kTol) {
  return std::abs(actual - expected) <= tol * std::max(1.0, std::abs(expected));
}

::testing::AssertionResult Close(double actual, double expected, double tol = kTol) {
  if (IsClose(actual, expected, tol)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << fmt::format("tape {:.17g} vs closed form {:.17g} (|diff| = {:.3g}, tol {:.1g})", actual,
                        expected, std::abs(actual - expected), tol);
}

::testing::AssertionResult AllClose(std::span<const double> actual,
                                    std::span<const double> expected, double tol = kTol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " vs expected size " << expected.size();
  }
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (!IsClose(actual[i], expected[i], tol)) {
      return ::testing::AssertionFailure() << fmt::format(
                 "element {}: tape {:.17g} vs closed form {:.17g} (|diff| = {:.3g}, tol {:.1g})", i,
                 actual[i], expected[i], std::abs(actual[i] - expected[i]), tol);
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<double> Values(const Tensor& t) {
  if (!t.defined()) return {};
  return {t.values().begin(), t.values().end()};
}

// The gradient backward() accumulated into `leaf`: defined, in the leaf's shape, equal to
// `expected` elementwise.
::testing::AssertionResult GradIs(const Tensor& leaf, std::span<const double> expected,
                                  double tol = kTol) {
  const Tensor g = leaf.grad();
  if (!g.defined()) {
    return ::testing::AssertionFailure() << "grad() is undefined: backward did not reach the leaf";
  }
  if (!(g.shape() == leaf.shape())) {
    return ::testing::AssertionFailure()
           << fmt::format("grad shape {} vs leaf shape {}", g.shape(), leaf.shape());
  }
  return AllClose(g.values(), expected, tol);
}

::testing::AssertionResult GradIs(const Tensor& leaf, std::initializer_list<double> expected,
                                  double tol = kTol) {
  return GradIs(leaf, std::span<const double>(expected.begin(), expected.size()), tol);
}

// ---------------------------------------------------------------------------------------------
// Drawing and building tensors.

std::int64_t DrawDim(Generator& gen, std::int64_t low, std::int64_t high) {
  return low + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(high - low + 1)));
}

std::vector<double> Normal(Generator& gen, std::int64_t count, double scale = 1.0) {
  std::vector<double> v(static_cast<std::size_t>(count));
  for (double& x : v) x = scale * gen.normal();
  return v;
}

std::vector<double> Uniform(Generator& gen, std::int64_t count, double low, double high) {
  std::vector<double> v(static_cast<std::size_t>(count));
  for (double& x : v) x = low + (high - low) * gen.uniform();
  return v;
}

// Binary targets: hard {0, 1} or soft in [0, 1). Every closed form below holds for both.
std::vector<double> BinaryTargets(Generator& gen, std::int64_t count, bool hard) {
  std::vector<double> v(static_cast<std::size_t>(count));
  for (double& y : v) y = hard ? static_cast<double>(gen.below(2)) : gen.uniform();
  return v;
}

std::vector<std::int64_t> Labels(Generator& gen, std::int64_t count, std::int64_t classes) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(count));
  for (auto& k : v) k = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(classes)));
  return v;
}

std::vector<double> OneHot(const std::vector<std::int64_t>& labels, std::int64_t classes) {
  std::vector<double> t(labels.size() * static_cast<std::size_t>(classes), 0.0);
  for (std::size_t n = 0; n < labels.size(); ++n) {
    t[n * static_cast<std::size_t>(classes) + static_cast<std::size_t>(labels[n])] = 1.0;
  }
  return t;
}

std::vector<double> AsDoubles(const std::vector<std::int64_t>& labels) {
  return {labels.begin(), labels.end()};
}

Tensor Leaf(std::vector<double> values, const Shape& shape) {
  Tensor t = tapegrad::from_values(std::move(values), shape);
  t.requires_grad_();
  return t;
}

Tensor Const(std::vector<double> values, const Shape& shape) {
  return tapegrad::from_values(std::move(values), shape);
}

// ---------------------------------------------------------------------------------------------
// Closed forms in plain doubles.

double Sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// Row-wise softmax of a [rows, cols] matrix, max subtracted.
std::vector<double> SoftmaxRows(const std::vector<double>& z, std::int64_t rows,
                                std::int64_t cols) {
  std::vector<double> p(z.size());
  const auto c = static_cast<std::size_t>(cols);
  for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
    double m = z[r * c];
    for (std::size_t j = 0; j < c; ++j) m = std::max(m, z[r * c + j]);
    double total = 0.0;
    for (std::size_t j = 0; j < c; ++j) total += p[r * c + j] = std::exp(z[r * c + j] - m);
    for (std::size_t j = 0; j < c; ++j) p[r * c + j] /= total;
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// One sigmoid neuron over a batch: z_n = w . x_n + b, p_n = sigma(z_n).

struct NeuronDraw {
  std::int64_t n = 0;
  std::int64_t d = 0;
  std::vector<double> x;  // [n, d]
  std::vector<double> w;  // [d]
  double b = 0.0;
  std::vector<double> y;  // [n] targets in [0, 1]
  std::vector<double> z;  // [n] plain-double forward pass
  std::vector<double> p;  // [n]
};

NeuronDraw DrawNeuron(Generator& gen, std::int64_t n, bool hard_targets) {
  NeuronDraw s;
  s.n = n;
  s.d = DrawDim(gen, 1, 6);
  s.x = Normal(gen, n * s.d);
  s.w = Normal(gen, s.d, 1.0 / std::sqrt(static_cast<double>(s.d)));
  s.b = gen.normal();
  s.y = BinaryTargets(gen, n, hard_targets);
  const auto d = static_cast<std::size_t>(s.d);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
    double z = s.b;
    for (std::size_t j = 0; j < d; ++j) z += s.w[j] * s.x[i * d + j];
    s.z.push_back(z);
    s.p.push_back(Sigmoid(z));
  }
  return s;
}

// The chain rule through the neuron: given r_n = dL/dz_n, dL/dw_j = sum_n r_n x_nj and
// dL/db = sum_n r_n.
struct NeuronGrads {
  std::vector<double> w;
  double b = 0.0;
};

NeuronGrads ChainThroughNeuron(const NeuronDraw& s, const std::vector<double>& r) {
  NeuronGrads g;
  g.w.assign(static_cast<std::size_t>(s.d), 0.0);
  const auto d = static_cast<std::size_t>(s.d);
  for (std::size_t i = 0; i < static_cast<std::size_t>(s.n); ++i) {
    for (std::size_t j = 0; j < d; ++j) g.w[j] += r[i] * s.x[i * d + j];
    g.b += r[i];
  }
  return g;
}

struct NeuronTape {
  Tensor w, b, z, p;
};

// rank0: one sample as a scalar z of shape []; otherwise z has shape [n] (n may be 1).
NeuronTape RecordNeuron(const NeuronDraw& s, bool rank0) {
  NeuronTape t;
  t.w = Leaf(s.w, Shape{s.d});
  t.b = Leaf({s.b}, Shape{});
  if (rank0) {
    const Tensor x = Const(s.x, Shape{s.d});
    t.z = tapegrad::sum(x * t.w) + t.b;
  } else {
    const Tensor x = Const(s.x, Shape{s.n, s.d});
    t.z = tapegrad::sum(x * t.w, -1) + t.b;
  }
  t.p = tapegrad::sigmoid(t.z);
  return t;
}

Tensor NeuronTargets(const NeuronDraw& s, bool rank0) {
  return rank0 ? tapegrad::scalar(s.y[0]) : Const(s.y, Shape{s.n});
}

double BceValue(double p, double y) {
  return -(y * std::log(p) + (1.0 - y) * std::log(1.0 - p));
}

void ExpectNeuronGrads(const NeuronTape& t, const NeuronGrads& g) {
  EXPECT_TRUE(GradIs(t.w, g.w)) << "dL/dw";
  EXPECT_TRUE(GradIs(t.b, {g.b})) << "dL/db";
}

// ---------------------------------------------------------------------------------------------
// A linear layer z = x W^T + b, x [n, d], W [c, d], b [c], z [n, c].

struct LinearDraw {
  std::int64_t n = 0, d = 0, c = 0;
  std::vector<double> x;  // [n, d]
  std::vector<double> w;  // [c, d]
  std::vector<double> b;  // [c]
  std::vector<double> z;  // [n, c]
};

LinearDraw DrawLinear(Generator& gen, std::int64_t classes) {
  LinearDraw s;
  s.n = DrawDim(gen, 1, 12);
  s.d = DrawDim(gen, 1, 6);
  s.c = classes;
  s.x = Normal(gen, s.n * s.d);
  s.w = Normal(gen, s.c * s.d, 1.0 / std::sqrt(static_cast<double>(s.d)));
  s.b = Normal(gen, s.c);
  const auto n = static_cast<std::size_t>(s.n), d = static_cast<std::size_t>(s.d),
             c = static_cast<std::size_t>(s.c);
  s.z.assign(n * c, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < c; ++k) {
      double z = s.b[k];
      for (std::size_t j = 0; j < d; ++j) z += s.x[i * d + j] * s.w[k * d + j];
      s.z[i * c + k] = z;
    }
  }
  return s;
}

struct LinearTape {
  Tensor x, w, b, z;
};

LinearTape RecordLinear(const LinearDraw& s) {
  LinearTape t;
  t.x = Leaf(s.x, Shape{s.n, s.d});
  t.w = Leaf(s.w, Shape{s.c, s.d});
  t.b = Leaf(s.b, Shape{s.c});
  t.z = tapegrad::matmul(t.x, t.w, {.transpose_b = true}) + t.b;
  return t;
}

// Given G = dL/dz [n, c]: dL/dW = G^T x [c, d], dL/db = sum_n G_n [c], dL/dx = G W [n, d].
void ExpectLinearGrads(const LinearTape& t, const LinearDraw& s, const std::vector<double>& g) {
  const auto n = static_cast<std::size_t>(s.n), d = static_cast<std::size_t>(s.d),
             c = static_cast<std::size_t>(s.c);
  std::vector<double> dw(c * d, 0.0), db(c, 0.0), dx(n * d, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < c; ++k) {
      db[k] += g[i * c + k];
      for (std::size_t j = 0; j < d; ++j) {
        dw[k * d + j] += g[i * c + k] * s.x[i * d + j];
        dx[i * d + j] += g[i * c + k] * s.w[k * d + j];
      }
    }
  }
  EXPECT_TRUE(GradIs(t.w, dw)) << "dL/dW = G^T x";
  EXPECT_TRUE(GradIs(t.b, db)) << "dL/db = sum_n G_n";
  EXPECT_TRUE(GradIs(t.x, dx)) << "dL/dx = G W";
}

// dL/dz for softmax + cross-entropy with true classes `labels`, times `scale`, checked entry by
// entry and case by case: scale (p_k - 1) at the true class k, scale p_j at every other j.
::testing::AssertionResult SoftmaxCrossEntropyGradIs(const Tensor& g, const std::vector<double>& p,
                                                     const std::vector<std::int64_t>& labels,
                                                     std::int64_t classes, double scale) {
  if (!g.defined()) return ::testing::AssertionFailure() << "gradient is undefined";
  if (g.numel() != p.size()) {
    return ::testing::AssertionFailure()
           << "gradient has " << g.numel() << " elements, expected " << p.size();
  }
  const auto c = static_cast<std::size_t>(classes);
  for (std::size_t n = 0; n < labels.size(); ++n) {
    for (std::size_t j = 0; j < c; ++j) {
      const std::size_t i = n * c + j;
      const bool true_class = static_cast<std::int64_t>(j) == labels[n];
      const double expected = true_class ? scale * (p[i] - 1.0) : scale * p[i];
      if (!IsClose(g.values()[i], expected)) {
        return ::testing::AssertionFailure() << fmt::format(
                   "sample {}, class {} ({}): tape {:.17g} vs closed form {:.17g}", n, j,
                   true_class ? "true class, expected p_k - 1" : "other class, expected p_j",
                   g.values()[i], expected);
      }
    }
  }
  return ::testing::AssertionSuccess();
}

double CrossEntropyValue(const std::vector<double>& p, const std::vector<std::int64_t>& labels,
                         std::int64_t classes) {
  double total = 0.0;
  for (std::size_t n = 0; n < labels.size(); ++n) {
    total -=
        std::log(p[n * static_cast<std::size_t>(classes) + static_cast<std::size_t>(labels[n])]);
  }
  return total;
}

// =============================================================================================
// (a) sigmoid + binary cross-entropy: dL/dw = (p - y) x, dL/db = p - y.

// The binary cross-entropy of a sigmoid neuron, from its probability (composed) or its logit
// (fused): both must give dL/dw = (p - y) x and dL/db = p - y.
using NeuronLoss = std::function<Tensor(const NeuronTape&, const Tensor& target, Reduction)>;

void CheckBceSingleSample(std::uint64_t seed, const NeuronLoss& loss_of) {
  Generator gen(seed);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const NeuronDraw s = DrawNeuron(gen, 1, draw % 2 == 0);
    // A scalar sample summed, or a batch of one averaged: both are the single-sample loss.
    const bool rank0 = (draw / 2) % 2 == 0;
    Tape tape;
    const NeuronTape t = RecordNeuron(s, rank0);
    const Tensor loss =
        loss_of(t, NeuronTargets(s, rank0), rank0 ? Reduction::sum : Reduction::mean);
    const double p = s.p[0], y = s.y[0];
    EXPECT_TRUE(Close(loss.item(), BceValue(p, y)));
    loss.backward();
    std::vector<double> dw(s.x.size());
    for (std::size_t j = 0; j < dw.size(); ++j) dw[j] = (p - y) * s.x[j];
    EXPECT_TRUE(GradIs(t.w, dw)) << "dL/dw = (p - y) x";
    EXPECT_TRUE(GradIs(t.b, {p - y})) << "dL/db = p - y";
  }
}

void CheckBceBatchMean(std::uint64_t seed, const NeuronLoss& loss_of) {
  Generator gen(seed);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const NeuronDraw s = DrawNeuron(gen, DrawDim(gen, 2, 16), draw % 2 == 0);
    Tape tape;
    const NeuronTape t = RecordNeuron(s, false);
    const Tensor loss = loss_of(t, NeuronTargets(s, false), Reduction::mean);
    const double inv_n = 1.0 / static_cast<double>(s.n);
    double value = 0.0;
    std::vector<double> r(s.p.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      value += inv_n * BceValue(s.p[i], s.y[i]);
      r[i] = inv_n * (s.p[i] - s.y[i]);  // the mean's 1/N, and sigma' cancelled
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    ExpectNeuronGrads(t, ChainThroughNeuron(s, r));
  }
}

Tensor ComposedBce(const NeuronTape& t, const Tensor& target, Reduction r) {
  return nn::binary_cross_entropy(t.p, target, r);
}
Tensor FusedBce(const NeuronTape& t, const Tensor& target, Reduction r) {
  return nn::bce_with_logits(t.z, target, r);
}

TEST(SeedClosedForm, SigmoidBinaryCrossEntropySingleSample) {
  CheckBceSingleSample(0xA001, ComposedBce);
}

TEST(SeedClosedForm, SigmoidBinaryCrossEntropyBatchMean) {
  CheckBceBatchMean(0xA002, ComposedBce);
}

TEST(SeedClosedForm, SigmoidBinaryCrossEntropyBatchSum) {
  Generator gen(0xA003);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const NeuronDraw s = DrawNeuron(gen, DrawDim(gen, 2, 16), draw % 2 == 0);
    Tape tape;
    const NeuronTape t = RecordNeuron(s, false);
    const Tensor loss = nn::binary_cross_entropy(t.p, NeuronTargets(s, false), Reduction::sum);
    double value = 0.0;
    std::vector<double> r(s.p.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      value += BceValue(s.p[i], s.y[i]);
      r[i] = s.p[i] - s.y[i];
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    ExpectNeuronGrads(t, ChainThroughNeuron(s, r));
  }
}

// =============================================================================================
// (b) sigmoid + squared error: dL/dw = (p - y) sigma'(z) x, sigma' = sigma (1 - sigma).

TEST(SeedClosedForm, SigmoidHalfSquaredErrorSingleSample) {
  Generator gen(0xB001);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const NeuronDraw s = DrawNeuron(gen, 1, draw % 2 == 0);
    const bool rank0 = (draw / 2) % 2 == 0;
    Tape tape;
    const NeuronTape t = RecordNeuron(s, rank0);
    const Tensor loss = nn::half_squared_error(t.p, NeuronTargets(s, rank0));
    const double p = s.p[0], y = s.y[0], sigma_prime = p * (1.0 - p);
    EXPECT_TRUE(Close(loss.item(), 0.5 * (p - y) * (p - y)));
    loss.backward();
    std::vector<double> dw(s.x.size());
    for (std::size_t j = 0; j < dw.size(); ++j) dw[j] = (p - y) * sigma_prime * s.x[j];
    EXPECT_TRUE(GradIs(t.w, dw)) << "dL/dw = (p - y) sigma'(z) x";
    EXPECT_TRUE(GradIs(t.b, {(p - y) * sigma_prime})) << "dL/db = (p - y) sigma'(z)";
  }
}

TEST(SeedClosedForm, SigmoidHalfSquaredErrorBatchSum) {
  Generator gen(0xB002);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const NeuronDraw s = DrawNeuron(gen, DrawDim(gen, 2, 16), draw % 2 == 0);
    Tape tape;
    const NeuronTape t = RecordNeuron(s, false);
    // 1/2 sum_n (p_n - y_n)^2: a sum, so no 1/N.
    const Tensor loss = nn::half_squared_error(t.p, NeuronTargets(s, false));
    double value = 0.0;
    std::vector<double> r(s.p.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      value += 0.5 * (s.p[i] - s.y[i]) * (s.p[i] - s.y[i]);
      r[i] = (s.p[i] - s.y[i]) * s.p[i] * (1.0 - s.p[i]);
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    ExpectNeuronGrads(t, ChainThroughNeuron(s, r));
  }
}

TEST(SeedClosedForm, SigmoidMseBatchMean) {
  Generator gen(0xB003);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const NeuronDraw s = DrawNeuron(gen, DrawDim(gen, 1, 16), draw % 2 == 0);
    Tape tape;
    const NeuronTape t = RecordNeuron(s, false);
    // (1/N) sum_n (p_n - y_n)^2: no 1/2 (factor 2) and a mean (factor 1/N).
    const Tensor loss = nn::mse(t.p, NeuronTargets(s, false));
    const double inv_n = 1.0 / static_cast<double>(s.n);
    double value = 0.0;
    std::vector<double> r(s.p.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      value += inv_n * (s.p[i] - s.y[i]) * (s.p[i] - s.y[i]);
      r[i] = 2.0 * inv_n * (s.p[i] - s.y[i]) * s.p[i] * (1.0 - s.p[i]);
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    ExpectNeuronGrads(t, ChainThroughNeuron(s, r));
  }
}

// Section 3's claim: with a confidently wrong neuron (|z| >= 4, target on the other side) the
// squared-error gradient is the cross-entropy gradient times sigma'(z) <= sigma'(4) < 0.018,
// while the cross-entropy gradient stays |p - y| > 0.98.
TEST(SeedClosedForm, SigmoidSquaredErrorGradientVanishesWhenSaturated) {
  Generator gen(0xB004);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    NeuronDraw s = DrawNeuron(gen, 1, true);
    const double sign = gen.below(2) == 0 ? 1.0 : -1.0;
    const double z = sign * (4.0 + 6.0 * gen.uniform());
    s.b += z - s.z[0];  // move the bias so that z lands where we want it
    s.z[0] = s.b;
    for (std::size_t j = 0; j < s.w.size(); ++j) s.z[0] += s.w[j] * s.x[j];
    s.p[0] = Sigmoid(s.z[0]);
    s.y[0] = sign > 0 ? 0.0 : 1.0;  // confidently wrong
    const double p = s.p[0], y = s.y[0], sigma_prime = p * (1.0 - p);
    ASSERT_LT(sigma_prime, 0.018);

    Tape tape;
    const NeuronTape sq = RecordNeuron(s, true);
    const NeuronTape ce = RecordNeuron(s, true);
    nn::half_squared_error(sq.p, NeuronTargets(s, true)).backward();
    nn::binary_cross_entropy(ce.p, NeuronTargets(s, true), Reduction::sum).backward();
    EXPECT_TRUE(GradIs(sq.b, {(p - y) * sigma_prime}));
    EXPECT_TRUE(GradIs(ce.b, {p - y}));
    ASSERT_TRUE(sq.b.grad().defined() && ce.b.grad().defined());
    const double sq_step = sq.b.grad().item(), ce_step = ce.b.grad().item();
    EXPECT_GT(std::abs(ce_step), 0.98);
    EXPECT_LT(std::abs(sq_step), 0.018 * std::abs(ce_step));
    EXPECT_TRUE(Close(sq_step / ce_step, sigma_prime));
  }
}

// NOTES.md "Numbers worth reproducing": Nielsen's neuron, x = 1, y = 0, eta = 0.15, started at
// w = b = 2 (output 0.98). Every step's gradient comes from the tape and is checked against the
// closed form; the trajectories are checked against plain-double gradient descent.
TEST(SeedClosedForm, SigmoidSaturatedStartNielsenTrajectories) {
  constexpr double kEta = 0.15;
  constexpr int kEpochs = 300;
  for (const bool cross_entropy : {false, true}) {
    SCOPED_TRACE(cross_entropy ? "cross-entropy" : "quadratic");
    Tensor w = Leaf({2.0}, Shape{});
    Tensor b = Leaf({2.0}, Shape{});
    double w_ref = 2.0, b_ref = 2.0;
    std::vector<double> outputs;
    for (int epoch = 0; epoch <= kEpochs; ++epoch) {
      Tape tape;
      const Tensor a = tapegrad::sigmoid(w * 1.0 + b);
      const double a_ref = Sigmoid(w_ref + b_ref);
      ASSERT_TRUE(Close(a.item(), a_ref)) << "epoch " << epoch;
      outputs.push_back(a.item());
      if (epoch == kEpochs) break;
      const Tensor loss = cross_entropy
                              ? nn::binary_cross_entropy(a, tapegrad::scalar(0.0), Reduction::sum)
                              : nn::half_squared_error(a, tapegrad::scalar(0.0));
      w.zero_grad();
      b.zero_grad();
      loss.backward();
      const double step = cross_entropy ? a_ref : a_ref * a_ref * (1.0 - a_ref);
      ASSERT_TRUE(GradIs(w, {step})) << "epoch " << epoch;
      ASSERT_TRUE(GradIs(b, {step})) << "epoch " << epoch;
      w.mutable_values()[0] -= kEta * w.grad().item();
      b.mutable_values()[0] -= kEta * b.grad().item();
      w_ref -= kEta * step;
      b_ref -= kEta * step;
    }
    EXPECT_TRUE(Close(outputs[0], 0.98201379003790845));
    if (cross_entropy) {
      EXPECT_LT(outputs[50], 0.1);  // learns at once
    } else {
      EXPECT_GT(outputs[150], 0.93);  // barely moves for ~150 epochs
      EXPECT_LT(outputs[300], 0.21);  // then learns
    }
  }
}

// =============================================================================================
// (c) softmax + cross-entropy: dL/dz_j = p_j - t_j, i.e. p_k - 1 at the true class k, p_j
// elsewhere.

TEST(SeedClosedForm, SoftmaxCrossEntropyOneHotSingleSample) {
  Generator gen(0xC001);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, c, 2.0);
    const std::vector<std::int64_t> label = Labels(gen, 1, c);
    const std::vector<double> p = SoftmaxRows(z, 1, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{c});
    const Tensor loss =
        nn::cross_entropy(tapegrad::softmax(logits), Const(OneHot(label, c), Shape{c}));
    EXPECT_TRUE(Close(loss.item(), CrossEntropyValue(p, label, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, label, c, 1.0));
  }
}

TEST(SeedClosedForm, SoftmaxCrossEntropyClassIndexSingleSample) {
  Generator gen(0xC002);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, c, 2.0);
    const std::vector<std::int64_t> label = Labels(gen, 1, c);
    const std::vector<double> p = SoftmaxRows(z, 1, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{c});
    const Tensor target = tapegrad::scalar(static_cast<double>(label[0]));  // index, shape []
    const Tensor loss = nn::cross_entropy(tapegrad::softmax(logits), target);
    EXPECT_TRUE(Close(loss.item(), CrossEntropyValue(p, label, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, label, c, 1.0));
  }
}

TEST(SeedClosedForm, SoftmaxCrossEntropyOneHotBatchMean) {
  Generator gen(0xC003);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 12), c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, n * c, 2.0);
    const std::vector<std::int64_t> labels = Labels(gen, n, c);
    const std::vector<double> p = SoftmaxRows(z, n, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{n, c});
    const Tensor onehot = tapegrad::one_hot(Const(AsDoubles(labels), Shape{n}), c);
    ASSERT_TRUE(AllClose(onehot.values(), OneHot(labels, c), 0.0)) << "one_hot";
    const Tensor loss = nn::cross_entropy(tapegrad::softmax(logits), onehot);
    const double inv_n = 1.0 / static_cast<double>(n);
    EXPECT_TRUE(Close(loss.item(), inv_n * CrossEntropyValue(p, labels, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, labels, c, inv_n));
  }
}

TEST(SeedClosedForm, SoftmaxCrossEntropyClassIndexBatchMean) {
  Generator gen(0xC004);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 12), c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, n * c, 2.0);
    const std::vector<std::int64_t> labels = Labels(gen, n, c);
    const std::vector<double> p = SoftmaxRows(z, n, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{n, c});
    const Tensor loss =
        nn::cross_entropy(tapegrad::softmax(logits), Const(AsDoubles(labels), Shape{n}));
    const double inv_n = 1.0 / static_cast<double>(n);
    EXPECT_TRUE(Close(loss.item(), inv_n * CrossEntropyValue(p, labels, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, labels, c, inv_n));
  }
}

// Soft targets (rows summing to 1), summed over the batch: dL/dz = p - t with no 1/N.
TEST(SeedClosedForm, SoftmaxCrossEntropySoftTargetsBatchSum) {
  Generator gen(0xC005);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 12), c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, n * c, 2.0);
    std::vector<double> t = Uniform(gen, n * c, 0.0, 1.0);
    const auto cs = static_cast<std::size_t>(c);
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      double total = 0.0;
      for (std::size_t j = 0; j < cs; ++j) total += t[i * cs + j];
      for (std::size_t j = 0; j < cs; ++j) t[i * cs + j] /= total;
    }
    const std::vector<double> p = SoftmaxRows(z, n, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{n, c});
    const Tensor loss =
        nn::cross_entropy(tapegrad::softmax(logits), Const(t, Shape{n, c}), Reduction::sum);
    double value = 0.0;
    std::vector<double> expected(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      value -= t[i] * std::log(p[i]);
      expected[i] = p[i] - t[i];
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    EXPECT_TRUE(GradIs(logits, expected));
  }
}

// =============================================================================================
// (d) The fused losses, from logits, give the same closed forms.

TEST(SeedClosedForm, BceWithLogitsSingleSample) {
  CheckBceSingleSample(0xD001, FusedBce);
}

TEST(SeedClosedForm, BceWithLogitsBatchMean) {
  CheckBceBatchMean(0xD002, FusedBce);
}

TEST(SeedClosedForm, CrossEntropyWithLogitsSingleSample) {
  Generator gen(0xD003);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, c, 2.0);
    const std::vector<std::int64_t> label = Labels(gen, 1, c);
    const std::vector<double> p = SoftmaxRows(z, 1, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{c});
    // Alternate a one-hot target [C] and a class index [].
    const Tensor target = draw % 2 == 0 ? Const(OneHot(label, c), Shape{c})
                                        : tapegrad::scalar(static_cast<double>(label[0]));
    const Tensor loss = nn::cross_entropy_with_logits(logits, target);
    EXPECT_TRUE(Close(loss.item(), CrossEntropyValue(p, label, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, label, c, 1.0));
  }
}

TEST(SeedClosedForm, CrossEntropyWithLogitsOneHotBatchMean) {
  Generator gen(0xD004);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 12), c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, n * c, 2.0);
    const std::vector<std::int64_t> labels = Labels(gen, n, c);
    const std::vector<double> p = SoftmaxRows(z, n, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{n, c});
    const Tensor loss =
        nn::cross_entropy_with_logits(logits, Const(OneHot(labels, c), Shape{n, c}));
    const double inv_n = 1.0 / static_cast<double>(n);
    EXPECT_TRUE(Close(loss.item(), inv_n * CrossEntropyValue(p, labels, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, labels, c, inv_n));
  }
}

TEST(SeedClosedForm, CrossEntropyWithLogitsClassIndexBatchMean) {
  Generator gen(0xD005);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 12), c = DrawDim(gen, 2, 8);
    const std::vector<double> z = Normal(gen, n * c, 2.0);
    const std::vector<std::int64_t> labels = Labels(gen, n, c);
    const std::vector<double> p = SoftmaxRows(z, n, c);
    Tape tape;
    const Tensor logits = Leaf(z, Shape{n, c});
    const Tensor loss = nn::cross_entropy_with_logits(logits, Const(AsDoubles(labels), Shape{n}));
    const double inv_n = 1.0 / static_cast<double>(n);
    EXPECT_TRUE(Close(loss.item(), inv_n * CrossEntropyValue(p, labels, c)));
    loss.backward();
    EXPECT_TRUE(SoftmaxCrossEntropyGradIs(logits.grad(), p, labels, c, inv_n));
  }
}

// ---------------------------------------------------------------------------------------------
// (d) Through a linear layer z = x W^T + b built from ops: with G = dL/dz,
// dL/dW = G^T x, dL/db = sum_n G_n, dL/dx = G W.

// Binary: W [1, d], z [n, 1], G = (p - t) / N.
TEST(SeedClosedForm, LinearLayerSigmoidBinaryCrossEntropyBatchMean) {
  Generator gen(0xD101);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const LinearDraw s = DrawLinear(gen, 1);
    const std::vector<double> y = BinaryTargets(gen, s.n, draw % 2 == 0);
    Tape tape;
    const LinearTape t = RecordLinear(s);
    const Tensor loss = nn::binary_cross_entropy(tapegrad::sigmoid(t.z), Const(y, Shape{s.n, 1}));
    const double inv_n = 1.0 / static_cast<double>(s.n);
    double value = 0.0;
    std::vector<double> g(y.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double p = Sigmoid(s.z[i]);
      value += inv_n * BceValue(p, y[i]);
      g[i] = inv_n * (p - y[i]);
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    ExpectLinearGrads(t, s, g);
  }
}

TEST(SeedClosedForm, LinearLayerBceWithLogitsBatchMean) {
  Generator gen(0xD102);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const LinearDraw s = DrawLinear(gen, 1);
    const std::vector<double> y = BinaryTargets(gen, s.n, draw % 2 == 0);
    Tape tape;
    const LinearTape t = RecordLinear(s);
    const Tensor loss = nn::bce_with_logits(t.z, Const(y, Shape{s.n, 1}));
    const double inv_n = 1.0 / static_cast<double>(s.n);
    double value = 0.0;
    std::vector<double> g(y.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double p = Sigmoid(s.z[i]);
      value += inv_n * BceValue(p, y[i]);
      g[i] = inv_n * (p - y[i]);
    }
    EXPECT_TRUE(Close(loss.item(), value));
    loss.backward();
    ExpectLinearGrads(t, s, g);
  }
}

// Squared error: G = (p - t) sigma'(z) for 1/2 sum, and 2/N (p - t) sigma'(z) for mse.
TEST(SeedClosedForm, LinearLayerSigmoidSquaredErrorBatch) {
  Generator gen(0xD103);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const LinearDraw s = DrawLinear(gen, 1);
    const std::vector<double> y = BinaryTargets(gen, s.n, draw % 2 == 0);
    const bool half = draw % 3 != 0;
    Tape tape;
    const LinearTape t = RecordLinear(s);
    const Tensor p_tape = tapegrad::sigmoid(t.z);
    const Tensor target = Const(y, Shape{s.n, 1});
    const Tensor loss = half ? nn::half_squared_error(p_tape, target) : nn::mse(p_tape, target);
    const double inv_n = 1.0 / static_cast<double>(s.n);
    double value = 0.0;
    std::vector<double> g(y.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double p = Sigmoid(s.z[i]);
      value += (half ? 0.5 : inv_n) * (p - y[i]) * (p - y[i]);
      g[i] = (half ? 1.0 : 2.0 * inv_n) * (p - y[i]) * p * (1.0 - p);
    }
    EXPECT_TRUE(Close(loss.item(), value)) << (half ? "half_squared_error" : "mse");
    loss.backward();
    ExpectLinearGrads(t, s, g);
  }
}

// Multi-class: W [C, d], z [n, C], G = (P - T) / N; one-hot and class-index targets alternate.
TEST(SeedClosedForm, LinearLayerSoftmaxCrossEntropyBatchMean) {
  Generator gen(0xD104);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const LinearDraw s = DrawLinear(gen, DrawDim(gen, 2, 6));
    const std::vector<std::int64_t> labels = Labels(gen, s.n, s.c);
    const std::vector<double> t_onehot = OneHot(labels, s.c);
    const std::vector<double> p = SoftmaxRows(s.z, s.n, s.c);
    Tape tape;
    const LinearTape t = RecordLinear(s);
    const Tensor target =
        draw % 2 == 0 ? Const(t_onehot, Shape{s.n, s.c}) : Const(AsDoubles(labels), Shape{s.n});
    const Tensor loss = nn::cross_entropy(tapegrad::softmax(t.z), target);
    const double inv_n = 1.0 / static_cast<double>(s.n);
    std::vector<double> g(p.size());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = inv_n * (p[i] - t_onehot[i]);
    EXPECT_TRUE(Close(loss.item(), inv_n * CrossEntropyValue(p, labels, s.c)));
    loss.backward();
    ExpectLinearGrads(t, s, g);
  }
}

TEST(SeedClosedForm, LinearLayerCrossEntropyWithLogitsBatchMean) {
  Generator gen(0xD105);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const LinearDraw s = DrawLinear(gen, DrawDim(gen, 2, 6));
    const std::vector<std::int64_t> labels = Labels(gen, s.n, s.c);
    const std::vector<double> t_onehot = OneHot(labels, s.c);
    const std::vector<double> p = SoftmaxRows(s.z, s.n, s.c);
    Tape tape;
    const LinearTape t = RecordLinear(s);
    const Tensor target =
        draw % 2 == 0 ? Const(t_onehot, Shape{s.n, s.c}) : Const(AsDoubles(labels), Shape{s.n});
    const Tensor loss = nn::cross_entropy_with_logits(t.z, target);
    const double inv_n = 1.0 / static_cast<double>(s.n);
    std::vector<double> g(p.size());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = inv_n * (p[i] - t_onehot[i]);
    EXPECT_TRUE(Close(loss.item(), inv_n * CrossEntropyValue(p, labels, s.c)));
    loss.backward();
    ExpectLinearGrads(t, s, g);
  }
}

// =============================================================================================
// (e) Second order.

// sigma''(z) = sigma (1 - sigma) (1 - 2 sigma): backward with create_graph leaves a
// differentiable sigma'(z) in z.grad(); a second backward of its sum gives sigma''(z).
TEST(SeedClosedForm, SigmoidSecondDerivativeViaBackwardCreateGraph) {
  Generator gen(0xE001);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 8);
    const std::vector<double> zv = Normal(gen, n, 3.0);
    std::vector<double> first(zv.size()), second(zv.size());
    for (std::size_t i = 0; i < zv.size(); ++i) {
      const double s = Sigmoid(zv[i]);
      first[i] = s * (1.0 - s);
      second[i] = s * (1.0 - s) * (1.0 - 2.0 * s);
    }
    Tape tape;
    Tensor z = Leaf(zv, Shape{n});
    tapegrad::sum(tapegrad::sigmoid(z)).backward(tapegrad::BackwardOptions{.create_graph = true});
    ASSERT_TRUE(GradIs(z, first)) << "sigma'(z)";
    const Tensor sigma_prime = z.grad();
    z.zero_grad();
    // Each sigma'(z_i) depends on z_i only, so d/dz_i sum_j sigma'(z_j) = sigma''(z_i).
    tapegrad::sum(sigma_prime).backward();
    EXPECT_TRUE(GradIs(z, second)) << "sigma''(z)";
  }
}

TEST(SeedClosedForm, SigmoidSecondDerivativeViaGrad) {
  Generator gen(0xE002);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const double zv = 3.0 * gen.normal();
    const double s = Sigmoid(zv);
    Tape tape;
    const Tensor z = Leaf({zv}, Shape{});
    const Tensor y = tapegrad::sigmoid(z);
    const auto first = tapegrad::grad(y, {z}, tapegrad::GradOptions{.create_graph = true});
    ASSERT_EQ(first.size(), 1u);
    ASSERT_TRUE(first[0].defined());
    EXPECT_TRUE(Close(first[0].item(), s * (1.0 - s))) << "sigma'(z)";
    const auto second = tapegrad::grad(first[0], {z});
    ASSERT_EQ(second.size(), 1u);
    ASSERT_TRUE(second[0].defined());
    EXPECT_TRUE(Close(second[0].item(), s * (1.0 - s) * (1.0 - 2.0 * s))) << "sigma''(z)";
    EXPECT_FALSE(z.grad().defined()) << "grad() must not touch leaves' grad()";
  }
}

// H_ij = d^2 L / dz_i dz_j = p_i delta_ij - p_i p_j, whatever the (one-hot) target.
std::vector<double> SoftmaxCrossEntropyHessian(const std::vector<double>& p) {
  const std::size_t c = p.size();
  std::vector<double> h(c * c);
  for (std::size_t i = 0; i < c; ++i) {
    for (std::size_t j = 0; j < c; ++j) h[i * c + j] = (i == j ? p[i] : 0.0) - p[i] * p[j];
  }
  return h;
}

Tensor UnitVector(std::int64_t size, std::int64_t index, const Shape& shape) {
  std::vector<double> e(static_cast<std::size_t>(size), 0.0);
  e[static_cast<std::size_t>(index)] = 1.0;
  return Const(std::move(e), shape);
}

// Row i of the Hessian as the gradient of the i-th component of g = dL/dz, that component taken
// as sum(g * e_i).
TEST(SeedClosedForm, SoftmaxCrossEntropyHessianIsDiagPMinusPPT) {
  Generator gen(0xE003);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t c = DrawDim(gen, 2, 6);
    const std::vector<double> zv = Normal(gen, c, 2.0);
    const std::vector<std::int64_t> label = Labels(gen, 1, c);
    const std::vector<double> p = SoftmaxRows(zv, 1, c);
    const std::vector<double> h = SoftmaxCrossEntropyHessian(p);
    Tape tape;
    const Tensor z = Leaf(zv, Shape{c});
    const Tensor target = draw % 2 == 0 ? Const(OneHot(label, c), Shape{c})
                                        : tapegrad::scalar(static_cast<double>(label[0]));
    const Tensor loss = nn::cross_entropy(tapegrad::softmax(z), target);
    const auto g = tapegrad::grad(loss, {z}, tapegrad::GradOptions{.create_graph = true});
    ASSERT_EQ(g.size(), 1u);
    ASSERT_TRUE(SoftmaxCrossEntropyGradIs(g[0], p, label, c, 1.0)) << "first order";
    std::vector<double> hessian;
    for (std::int64_t i = 0; i < c; ++i) {
      const Tensor component = tapegrad::sum(g[0] * UnitVector(c, i, Shape{c}));
      const auto row = tapegrad::grad(component, {z});
      ASSERT_EQ(row.size(), 1u);
      ASSERT_TRUE(row[0].defined());
      ASSERT_EQ(row[0].numel(), static_cast<std::size_t>(c));
      hessian.insert(hessian.end(), row[0].values().begin(), row[0].values().end());
    }
    EXPECT_TRUE(AllClose(hessian, h)) << "Hessian vs diag(p) - p p^T";
  }
}

// The same Hessian through the fused loss, each row taken with a seeded tapegrad::grad, over a
// batch: the mean's Hessian w.r.t. z [N, C] is block diagonal with blocks (diag(p_n) -
// p_n p_n^T) / N.
TEST(SeedClosedForm, CrossEntropyWithLogitsBatchHessianIsBlockDiagonal) {
  Generator gen(0xE004);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message() << "draw " << draw);
    const std::int64_t n = DrawDim(gen, 1, 4), c = DrawDim(gen, 2, 5);
    const std::vector<double> zv = Normal(gen, n * c, 2.0);
    const std::vector<std::int64_t> labels = Labels(gen, n, c);
    const std::vector<double> p = SoftmaxRows(zv, n, c);
    const auto nc = static_cast<std::size_t>(n * c), cs = static_cast<std::size_t>(c);
    const double inv_n = 1.0 / static_cast<double>(n);
    std::vector<double> h(nc * nc, 0.0);
    for (std::size_t b = 0; b < static_cast<std::size_t>(n); ++b) {
      const std::vector<double> pb(p.begin() + static_cast<std::ptrdiff_t>(b * cs),
                                   p.begin() + static_cast<std::ptrdiff_t>((b + 1) * cs));
      const std::vector<double> block = SoftmaxCrossEntropyHessian(pb);
      for (std::size_t i = 0; i < cs; ++i) {
        for (std::size_t j = 0; j < cs; ++j)
          h[(b * cs + i) * nc + b * cs + j] = inv_n * block[i * cs + j];
      }
    }
    Tape tape;
    const Tensor z = Leaf(zv, Shape{n, c});
    const Tensor target =
        draw % 2 == 0 ? Const(OneHot(labels, c), Shape{n, c}) : Const(AsDoubles(labels), Shape{n});
    const Tensor loss = nn::cross_entropy_with_logits(z, target);
    const auto g = tapegrad::grad(loss, {z}, tapegrad::GradOptions{.create_graph = true});
    ASSERT_EQ(g.size(), 1u);
    ASSERT_TRUE(SoftmaxCrossEntropyGradIs(g[0], p, labels, c, inv_n)) << "first order";
    std::vector<double> hessian;
    for (std::int64_t i = 0; i < n * c; ++i) {
      const std::vector<Tensor> outputs{g[0]}, inputs{z}, seeds{UnitVector(n * c, i, Shape{n, c})};
      const auto row = tapegrad::grad(outputs, inputs, seeds);
      ASSERT_EQ(row.size(), 1u);
      ASSERT_TRUE(row[0].defined());
      ASSERT_EQ(row[0].numel(), nc);
      hessian.insert(hessian.end(), row[0].values().begin(), row[0].values().end());
    }
    EXPECT_TRUE(AllClose(hessian, h)) << "Hessian vs blockdiag(diag(p_n) - p_n p_n^T) / N";
  }
}

// =============================================================================================
// (f) Fused losses equal their compositions, value and gradient (logits and targets), to 1e-12,
// on logits where the composition is stable, for every reduction (none seeded with random
// weights).

const Reduction kReductions[] = {Reduction::mean, Reduction::sum, Reduction::none};
const char* const kReductionNames[] = {"mean", "sum", "none"};

void BackwardWith(const Tensor& loss, Reduction reduction, const std::vector<double>& seed) {
  if (reduction == Reduction::none) {
    loss.backward(Const(seed, loss.shape()));
  } else {
    loss.backward();
  }
}

TEST(SeedClosedForm, FusedBceWithLogitsEqualsComposition) {
  Generator gen(0xF001);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message()
                 << "draw " << draw << ", reduction " << kReductionNames[draw % 3]);
    const Reduction reduction = kReductions[draw % 3];
    const std::int64_t n = DrawDim(gen, 1, 12);
    const std::vector<double> z = Uniform(gen, n, -8.0, 8.0);
    const std::vector<double> y = BinaryTargets(gen, n, (draw / 3) % 2 == 0);
    const std::vector<double> seed = Normal(gen, n);
    Tape tape;
    const Tensor zf = Leaf(z, Shape{n}), yf = Leaf(y, Shape{n});
    const Tensor zc = Leaf(z, Shape{n}), yc = Leaf(y, Shape{n});
    const Tensor fused = nn::bce_with_logits(zf, yf, reduction);
    const Tensor composed = nn::binary_cross_entropy(tapegrad::sigmoid(zc), yc, reduction);
    ASSERT_TRUE(fused.shape() == composed.shape())
        << fmt::format("{} vs {}", fused.shape(), composed.shape());
    EXPECT_TRUE(AllClose(fused.values(), composed.values(), kFusedTol)) << "value";
    BackwardWith(fused, reduction, seed);
    BackwardWith(composed, reduction, seed);
    EXPECT_TRUE(GradIs(zf, Values(zc.grad()), kFusedTol)) << "d/dlogits";
    EXPECT_TRUE(GradIs(yf, Values(yc.grad()), kFusedTol)) << "d/dtarget";
  }
}

TEST(SeedClosedForm, FusedCrossEntropyWithLogitsEqualsComposition) {
  Generator gen(0xF002);
  for (int draw = 0; draw < kDraws; ++draw) {
    SCOPED_TRACE(::testing::Message()
                 << "draw " << draw << ", reduction " << kReductionNames[draw % 3]);
    const Reduction reduction = kReductions[draw % 3];
    // Every fourth draw a single sample [C]; otherwise a batch [N, C].
    const bool single = (draw / 3) % 4 == 3;
    const std::int64_t n = single ? 1 : DrawDim(gen, 1, 12), c = DrawDim(gen, 2, 8);
    const Shape shape = single ? Shape{c} : Shape{n, c};
    const std::vector<double> z = Uniform(gen, n * c, -6.0, 6.0);
    const std::vector<std::int64_t> labels = Labels(gen, n, c);
    // Soft targets (rows summing to 1, requiring grad) or class indices.
    const bool soft = (draw / 3) % 2 == 0;
    std::vector<double> t = Uniform(gen, n * c, 0.0, 1.0);
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      double total = 0.0;
      for (std::size_t j = 0; j < static_cast<std::size_t>(c); ++j) total += t[i * c + j];
      for (std::size_t j = 0; j < static_cast<std::size_t>(c); ++j) t[i * c + j] /= total;
    }
    const std::vector<double> seed = Normal(gen, n);
    Tape tape;
    const Tensor zf = Leaf(z, shape), zc = Leaf(z, shape);
    Tensor tf, tc;
    if (soft) {
      tf = Leaf(t, shape);
      tc = Leaf(t, shape);
    } else {
      tf = single ? tapegrad::scalar(static_cast<double>(labels[0]))
                  : Const(AsDoubles(labels), Shape{n});
      tc = tf;
    }
    const Tensor fused = nn::cross_entropy_with_logits(zf, tf, reduction);
    const Tensor composed = nn::cross_entropy(tapegrad::softmax(zc), tc, reduction);
    ASSERT_TRUE(fused.shape() == composed.shape())
        << fmt::format("{} vs {}", fused.shape(), composed.shape());
    EXPECT_TRUE(AllClose(fused.values(), composed.values(), kFusedTol)) << "value";
    BackwardWith(fused, reduction, seed);
    BackwardWith(composed, reduction, seed);
    EXPECT_TRUE(GradIs(zf, Values(zc.grad()), kFusedTol)) << "d/dlogits";
    if (soft) {
      EXPECT_TRUE(GradIs(tf, Values(tc.grad()), kFusedTol)) << "d/dtarget";
    }
  }
}

}  // namespace
