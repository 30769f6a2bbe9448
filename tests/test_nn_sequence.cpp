// Layers of sequence models (issue 15): Embedding, GELU, CausalSelfAttention and Linear on
// [B, T, C] inputs, against closed forms, finite differences (first and second order), PyTorch
// float64, and the causal mask's exact zeros.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

#include "test_inputs.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;               // NOLINT: the ops read best unqualified
using namespace tapegrad::test_inputs;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Span = std::span<const Tensor>;

Tensor constant_indices(std::vector<double> values, const Shape& shape) {
  return from_values(std::move(values), shape);
}

// The attention of nanoGPT in PyTorch, on x0 = x [B, T, C] and the weights x1..x4 (c_attn.weight,
// c_attn.bias, c_proj.weight, c_proj.bias).
std::string torch_attention(int B, int T, int C, int H) {
  return fmt::format(
      "(lambda B, T, C, H: F.linear((lambda q, k, v: (torch.softmax((q @ k.transpose(-2, -1) / "
      "math.sqrt(C // H)).masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), "
      "float('-inf')), -1) @ v).transpose(1, 2).reshape(B, T, C))(*[t.reshape(B, T, H, C // "
      "H).transpose(1, 2) for t in F.linear(x0, x1, x2).split(C, 2)]), x3, x4))({}, {}, {}, {})",
      B, T, C, H);
}

// The attention block as a function of (x, c_attn.weight, c_attn.bias, c_proj.weight, c_proj.bias).
Function attention_of(const std::shared_ptr<nn::CausalSelfAttention>& attn) {
  return [attn](const std::vector<Tensor>& in) {
    attn->set_parameter("c_attn.weight", in[1]);
    attn->set_parameter("c_attn.bias", in[2]);
    attn->set_parameter("c_proj.weight", in[3]);
    attn->set_parameter("c_proj.bias", in[4]);
    return (*attn)(in[0]);
  };
}

std::vector<Tensor> attention_inputs(std::int64_t B, std::int64_t T, std::int64_t C,
                                     std::uint64_t seed) {
  return {normal({B, T, C}, seed), normal({3 * C, C}, seed + 1, 0.5),
          normal({3 * C}, seed + 2, 0.1), normal({C, C}, seed + 3, 0.5),
          normal({C}, seed + 4, 0.1)};
}

TEST(NnClosedForm, EmbeddingGradientAddsUpRowsUsedTwice) {
  Generator gen(3);
  nn::Embedding emb(5, 3, gen);
  const Tensor tokens = constant_indices({1, 4, 1, 0}, {2, 2});
  Tape tape;
  const Tensor y = emb(tokens);
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  for (std::int64_t c = 0; c < 3; ++c) {
    EXPECT_EQ(y.at({1, 0, c}), emb.weight().at({1, c}));
    EXPECT_EQ(y.at({0, 1, c}), emb.weight().at({4, c}));
  }
  sum(y).backward();
  const std::vector<double> used = {1, 2, 0, 0, 1};  // row 1 twice, rows 2 and 3 never
  for (std::int64_t r = 0; r < 5; ++r) {
    for (std::int64_t c = 0; c < 3; ++c) EXPECT_EQ(emb.weight().grad().at({r, c}), used[r]);
  }
}

TEST(NnGradCheck, CausalSelfAttentionBlock) {
  Generator gen(1);
  auto attn = std::make_shared<nn::CausalSelfAttention>(4, 2, gen);
  const GradcheckResult r = gradcheck(attention_of(attn), attention_inputs(2, 3, 4, 10));
  EXPECT_TRUE(r.passed) << r.report;
}

TEST(SecondOrderGradCheck, CausalSelfAttentionBlock) {
  Generator gen(2);
  auto attn = std::make_shared<nn::CausalSelfAttention>(4, 2, gen);
  const GradcheckResult r = gradgradcheck(attention_of(attn), attention_inputs(1, 3, 4, 20));
  EXPECT_TRUE(r.passed) << r.report;
}

// Position t's output does not depend on any input after t: those Jacobian blocks are exactly 0,
// and the blocks at and before t are not.
TEST(NnClosedForm, CausalSelfAttentionOutputAtTIgnoresInputsAfterT) {
  Generator gen(4);
  nn::CausalSelfAttention attn(6, 3, gen);
  const std::int64_t T = 5, C = 6;
  const Tensor x = normal({1, T, C}, 30);
  const Tensor J = jacobian([&](const Tensor& in) { return attn(in); }, x);  // [1,T,C,1,T,C]
  ASSERT_EQ(J.shape(), (Shape{1, T, C, 1, T, C}));
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t s = 0; s < T; ++s) {
      double block = 0.0;
      for (std::int64_t c = 0; c < C; ++c) {
        for (std::int64_t d = 0; d < C; ++d) block += std::abs(J.at({0, t, c, 0, s, d}));
      }
      if (s > t) {
        EXPECT_EQ(block, 0.0) << "output " << t << " depends on input " << s;
      } else {
        EXPECT_GT(block, 1e-6) << "output " << t << " ignores input " << s;
      }
    }
  }
}

TEST(TorchParity, EmbeddingLinearGeluAndCausalSelfAttention) {
  TorchOracle oracle;
  oracle.add("embedding", "F.embedding(x1.long(), x0)",
             {normal({6, 4}, 40), constant_indices({5, 0, 2, 2, 1, 5}, {2, 3})}, [](Span x) {
               Generator gen(0);
               nn::Embedding emb(6, 4, gen);
               emb.set_parameter("weight", x[0]);
               return Outputs{emb(x[1])};
             });
  oracle.add("linear on [B, T, C]", "F.linear(x0, x1, x2)",
             {normal({2, 3, 4}, 41), normal({5, 4}, 42), normal({5}, 43)}, [](Span x) {
               Generator gen(0);
               nn::Linear lin(4, 5, gen);
               lin.set_parameter("weight", x[1]);
               lin.set_parameter("bias", x[2]);
               return Outputs{lin(x[0])};
             });
  oracle.add("GELU tanh module", "F.gelu(x0, approximate='tanh')", {normal({3, 4}, 44)},
             [](Span x) { return Outputs{nn::GELU(GeluApproximate::tanh)(x[0])}; });
  struct Size {
    int B, T, C, H;
  };
  std::uint64_t seed = 50;
  for (const Size s : {Size{2, 5, 8, 2}, Size{1, 7, 12, 4}, Size{3, 1, 4, 1}}) {
    oracle.add(fmt::format("attention B{} T{} C{} H{}", s.B, s.T, s.C, s.H),
               torch_attention(s.B, s.T, s.C, s.H), attention_inputs(s.B, s.T, s.C, seed += 10),
               [s](Span x) {
                 Generator gen(0);
                 auto attn = std::make_shared<nn::CausalSelfAttention>(s.C, s.H, gen);
                 return Outputs{attention_of(attn)(std::vector<Tensor>(x.begin(), x.end()))};
               });
  }
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 6u);
}

// Masked attention logits are -inf on purpose: anomaly mode must let them through, and still
// report the NaN of a row with every position masked.
TEST(AnomalyMode, MaskedFillWithMinusInfIsIntendedButAFullyMaskedRowIsReported) {
  AnomalyGuard anomaly;
  const Tensor x = normal({3, 3}, 90);
  {
    Tape tape;
    const Tensor p = softmax(masked_fill(x, triu(ones({3, 3}), 1), -INFINITY), -1);
    EXPECT_NO_THROW(sum(p * normal({3, 3}, 91)).backward());
    EXPECT_EQ(p.at({0, 1}), 0.0);
    for (double v : x.grad().values()) EXPECT_TRUE(std::isfinite(v));
  }
  Tape tape;
  const Tensor all_masked = masked_fill(x, ones({3, 3}), -INFINITY);
  EXPECT_THROW(softmax(all_masked, -1), AnomalyError);  // every row is 0/0
  EXPECT_THROW(log(zeros({2})), AnomalyError);          // log(0): still reported
}

TEST(NnMisuse, SequenceLayersRejectBadSizesShapesAndIndices) {
  Generator gen(0);
  EXPECT_THROW(nn::CausalSelfAttention(10, 3, gen), ValueError);
  nn::CausalSelfAttention attn(8, 2, gen);
  EXPECT_THROW(attn(zeros({2, 3, 6})), ShapeError);
  EXPECT_THROW(attn(zeros({3, 8})), ShapeError);
  nn::Embedding emb(4, 2, gen);
  EXPECT_THROW(emb(constant_indices({0, 4}, {2})), ValueError);
  EXPECT_THROW(emb(constant_indices({0.5}, {1})), ValueError);
  EXPECT_THROW(nn::Embedding(0, 2, gen), ValueError);
  nn::Linear lin(4, 3, gen);
  EXPECT_THROW(lin(scalar(1.0)), ShapeError);
  EXPECT_THROW(lin(zeros({2, 3, 5})), ShapeError);
}

}  // namespace
