// multinomial: draw frequencies against the weights (a chi-square bound), seeding, no repeats
// without replacement, zero weights never drawn, and misuse.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

TEST(SamplingClosedForm, MultinomialFrequenciesFollowTheWeights) {
  Generator gen(123);
  const Tensor w = tensor({1.0, 0.0, 3.0, 6.0});  // probabilities 0.1, 0, 0.3, 0.6
  const std::int64_t n = 100000;
  const Tensor draws = multinomial(w, n, gen, true);
  ASSERT_EQ(draws.shape(), (Shape{n}));
  std::vector<double> count(4, 0.0);
  for (double d : draws.values()) count.at(static_cast<std::size_t>(d)) += 1.0;
  EXPECT_EQ(count[1], 0.0);  // a zero weight is never drawn
  const std::vector<double> p = {0.1, 0.0, 0.3, 0.6};
  double chi2 = 0.0;
  for (std::size_t j : {0u, 2u, 3u}) {
    const double expected = p[j] * static_cast<double>(n);
    chi2 += (count[j] - expected) * (count[j] - expected) / expected;
  }
  EXPECT_LT(chi2, 13.8);  // chi-square, 2 degrees of freedom: P(> 13.8) = 0.001
}

TEST(SamplingClosedForm, MultinomialWithoutReplacementNeverRepeatsAndIsSeeded) {
  Generator a(5), b(5);
  const Tensor w = from_values({1, 2, 3, 4, 5, 5, 4, 3, 2, 1}, {2, 5});
  const Tensor x = multinomial(w, 5, a);
  const Tensor y = multinomial(w, 5, b);
  ASSERT_EQ(x.shape(), (Shape{2, 5}));
  EXPECT_TRUE(std::equal(x.values().begin(), x.values().end(), y.values().begin()));
  for (std::int64_t r = 0; r < 2; ++r) {
    std::set<double> seen;
    for (std::int64_t d = 0; d < 5; ++d) seen.insert(x.at({r, d}));
    EXPECT_EQ(seen.size(), 5u);  // a permutation of 0..4
  }
  EXPECT_FALSE(x.requires_grad());
}

TEST(SamplingMisuse, MultinomialRejectsBadWeightsAndCounts) {
  Generator gen(1);
  EXPECT_THROW(multinomial(tensor({1.0, -1.0}), 1, gen), ValueError);
  EXPECT_THROW(multinomial(tensor({0.0, 0.0}), 1, gen), ValueError);
  EXPECT_THROW(multinomial(tensor({1.0, NAN}), 1, gen), ValueError);
  EXPECT_THROW(multinomial(tensor({1.0, 0.0}), 2, gen), ValueError);  // 2 draws, 1 non-zero
  EXPECT_THROW(multinomial(tensor({1.0}), 0, gen), ValueError);
  EXPECT_THROW(multinomial(scalar(1.0), 1, gen), ShapeError);
  EXPECT_NO_THROW(multinomial(tensor({1.0, 0.0}), 2, gen, true));
}

}  // namespace
