#include "tapegrad/nn/sequence.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/index.hpp"
#include "tapegrad/ops/join.hpp"
#include "tapegrad/ops/mask.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"

namespace tapegrad::nn {

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Generator& generator)
    : num_(num_embeddings), dim_(embedding_dim) {
  if (num_embeddings < 1 || embedding_dim < 1) {
    throw ValueError(fmt::format("Embedding: sizes must be at least 1, got ({}, {})",
                                 num_embeddings, embedding_dim));
  }
  register_parameter("weight", randn({num_embeddings, embedding_dim}, generator));
}

std::string Embedding::name() const {
  return fmt::format("Embedding({}, {})", num_, dim_);
}

Tensor Embedding::forward(const Tensor& indices) {
  // One gather of rows for any index shape: flatten, select, restore the shape plus dim.
  std::vector<std::int64_t> dims(indices.shape().dims().begin(), indices.shape().dims().end());
  const Tensor flat = reshape(indices.detach(), {static_cast<std::int64_t>(indices.numel())});
  dims.push_back(dim_);
  return reshape(index_select(weight(), 0, flat), dims);
}

std::string GELU::name() const {
  return approximate_ == GeluApproximate::tanh ? "GELU(approximate=tanh)" : "GELU";
}

CausalSelfAttention::CausalSelfAttention(std::int64_t n_embd, std::int64_t n_head,
                                         Generator& generator)
    : n_embd_(n_embd), n_head_(n_head) {
  if (n_embd < 1 || n_head < 1 || n_embd % n_head != 0) {
    throw ValueError(
        fmt::format("CausalSelfAttention: n_embd ({}) must be a positive multiple of n_head ({})",
                    n_embd, n_head));
  }
  c_attn_ = register_module("c_attn", std::make_shared<Linear>(n_embd, 3 * n_embd, generator));
  c_proj_ = register_module("c_proj", std::make_shared<Linear>(n_embd, n_embd, generator));
}

std::string CausalSelfAttention::name() const {
  return fmt::format("CausalSelfAttention({}, {} heads)", n_embd_, n_head_);
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  if (x.rank() != 3 || x.shape()[2] != n_embd_) {
    throw ShapeError(fmt::format("{}: input must be [B, T, {}] ({} vs [B, T, {}])", name(), n_embd_,
                                 x.shape(), n_embd_));
  }
  const std::int64_t B = x.shape()[0], T = x.shape()[1], C = n_embd_, H = n_head_, D = C / H;
  const std::vector<Tensor> qkv = split(c_attn_->forward(x), C, 2);  // 3 x [B, T, C]
  const auto heads = [&](const Tensor& t) {
    return permute(reshape(t, {B, T, H, D}), {0, 2, 1, 3});
  };
  const Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);  // [B, H, T, D]
  Tensor att = matmul(q, k, {.transpose_b = true}) * (1.0 / std::sqrt(static_cast<double>(D)));
  // 1 above the diagonal (j > i): the future, which position i must not see.
  const Tensor future = triu(ones({T, T}), 1);
  att = softmax(masked_fill(att, future, -INFINITY), -1);  // [B, H, T, T]
  const Tensor y = permute(matmul(att, v), {0, 2, 1, 3});  // [B, T, H, D]
  return c_proj_->forward(reshape(y, {B, T, C}));
}

}  // namespace tapegrad::nn
