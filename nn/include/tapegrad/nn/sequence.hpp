#pragma once
// Layers of sequence models, composed from ops: token embeddings, GELU, and nanoGPT's causal
// self-attention. Parameter names are PyTorch's and nanoGPT's, so a checkpoint moves unchanged.
//
//   tapegrad::Generator gen(1);
//   tapegrad::nn::Embedding wte(65, 64, gen);          // 65 tokens, 64 features
//   Tensor x = wte(tokens);                             // tokens [B, T] -> x [B, T, 64]
//   tapegrad::nn::CausalSelfAttention attn(64, 4, gen);
//   Tensor y = attn(x);                                 // [B, T, 64] -> [B, T, 64]
#include <cstdint>
#include <memory>
#include <string>

#include "tapegrad/core/random.hpp"
#include "tapegrad/nn/layers.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad::nn {

// y[..., :] = weight[index[...], :], PyTorch's nn.Embedding.
//   shapes: indices [...] (doubles holding integers in [0, num_embeddings)) -> y [..., dim]
//   derivative: dweight = index_add(zeros, 0, indices, g): rows used twice add up; the indices
//   get none. An index out of range or not an integer is a ValueError from index_select.
//   init: weight ~ N(0, 1), as PyTorch.
class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Generator& generator);
  Tensor forward(const Tensor& indices) override;
  std::string name() const override;  // "Embedding(65, 64)"
  Tensor weight() const { return parameter("weight"); }

 private:
  std::int64_t num_, dim_;
};

// y = gelu(x), exact (erf) or tanh-approximated, as nn.GELU(approximate=...).
class GELU : public Module {
 public:
  explicit GELU(GeluApproximate approximate = GeluApproximate::none) : approximate_(approximate) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate_); }
  std::string name() const override;

 private:
  GeluApproximate approximate_;
};

// Multi-head causal self-attention as nanoGPT's CausalSelfAttention (no dropout):
//   q, k, v = split(c_attn(x), n_embd, axis 2)                   x [B, T, C], C = n_embd
//   each viewed as heads: [B, T, H, C/H] -> permute -> [B, H, T, C/H]
//   att = q k^T / sqrt(C/H)                                      [B, H, T, T], one batched dgemm
//   att = softmax(masked_fill(att, j > i, -inf), -1)             position i sees only j <= i
//   y = c_proj(merge_heads(att v))                               [B, T, C]
//   derivative: from the composition (split, permute, batched matmul, masked_fill, softmax).
// Parameters: c_attn.weight [3C, C], c_attn.bias [3C], c_proj.weight [C, C], c_proj.bias [C]
// (PyTorch's Linear init). n_embd not divisible by n_head is a ValueError; an input that is not
// [B, T, n_embd] is a ShapeError naming the layer.
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(std::int64_t n_embd, std::int64_t n_head, Generator& generator);
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "CausalSelfAttention(64, 4 heads)"

 private:
  std::int64_t n_embd_, n_head_;
  std::shared_ptr<Linear> c_attn_, c_proj_;
};

}  // namespace tapegrad::nn
