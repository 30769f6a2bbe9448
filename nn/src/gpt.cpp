#include "tapegrad/nn/gpt.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string_view>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/sampling.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad::nn {

GPTMLP::GPTMLP(std::int64_t n_embd, Generator& generator) : n_embd_(n_embd) {
  c_fc_ = register_module("c_fc", std::make_shared<Linear>(n_embd, 4 * n_embd, generator));
  c_proj_ = register_module("c_proj", std::make_shared<Linear>(4 * n_embd, n_embd, generator));
}

std::string GPTMLP::name() const {
  return fmt::format("GPTMLP({} -> {} -> {})", n_embd_, 4 * n_embd_, n_embd_);
}

Tensor GPTMLP::forward(const Tensor& x) {
  return c_proj_->forward(gelu(c_fc_->forward(x)));
}

GPTBlock::GPTBlock(std::int64_t n_embd, std::int64_t n_head, Generator& generator)
    : n_embd_(n_embd), n_head_(n_head) {
  ln_1_ = register_module("ln_1", std::make_shared<LayerNorm>(n_embd));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(n_embd, n_head, generator));
  ln_2_ = register_module("ln_2", std::make_shared<LayerNorm>(n_embd));
  mlp_ = register_module("mlp", std::make_shared<GPTMLP>(n_embd, generator));
}

std::string GPTBlock::name() const {
  return fmt::format("GPTBlock({}, {} heads)", n_embd_, n_head_);
}

Tensor GPTBlock::forward(const Tensor& x) {
  const Tensor y = x + attn_->forward(ln_1_->forward(x));
  return y + mlp_->forward(ln_2_->forward(y));
}

GPTTransformer::GPTTransformer(const GPTConfig& config, Generator& generator) : config_(config) {
  wte_ = register_module("wte",
                         std::make_shared<Embedding>(config.vocab_size, config.n_embd, generator));
  wpe_ = register_module("wpe",
                         std::make_shared<Embedding>(config.block_size, config.n_embd, generator));
  h_ = register_module("h", std::make_shared<Sequential>());
  for (std::int64_t i = 0; i < config.n_layer; ++i) {
    h_->add(std::make_shared<GPTBlock>(config.n_embd, config.n_head, generator));
  }
  ln_f_ = register_module("ln_f", std::make_shared<LayerNorm>(config.n_embd));
}

Tensor GPTTransformer::forward(const Tensor& idx) {
  const std::int64_t T = idx.shape()[1];
  std::vector<double> positions(static_cast<std::size_t>(T));
  for (std::int64_t t = 0; t < T; ++t)
    positions[static_cast<std::size_t>(t)] = static_cast<double>(t);
  // [B, T, C] + [T, C]: the position rows broadcast over the batch.
  const Tensor x = wte_->forward(idx) + wpe_->forward(from_values(std::move(positions), {T}));
  return ln_f_->forward(h_->forward(x));
}

namespace {

void check_config(const GPTConfig& c) {
  const auto positive = [](std::string_view field, std::int64_t value) {
    if (value < 1) {
      throw ValueError(fmt::format("GPT: {} must be at least 1 (got {})", field, value));
    }
  };
  positive("vocab_size", c.vocab_size);
  positive("block_size", c.block_size);
  positive("n_layer", c.n_layer);
  positive("n_head", c.n_head);
  positive("n_embd", c.n_embd);
  if (c.n_embd % c.n_head != 0) {
    throw ValueError(
        fmt::format("GPT: n_embd ({}) must be a multiple of n_head ({})", c.n_embd, c.n_head));
  }
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

}  // namespace

GPT::GPT(GPTConfig config, Generator& generator) : config_(config) {
  check_config(config_);
  transformer_ =
      register_module("transformer", std::make_shared<GPTTransformer>(config_, generator));
  // nanoGPT's _init_weights and the scaled residual projections, over the layers' own init.
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (auto& [name, p] : named_parameters()) {
    const bool layer_norm = name.find(".ln_") != std::string::npos;
    auto v = p.mutable_values();
    if (ends_with(name, ".bias")) {
      std::fill(v.begin(), v.end(), 0.0);
    } else if (layer_norm) {
      std::fill(v.begin(), v.end(), 1.0);
    } else {
      const double sd = ends_with(name, ".c_proj.weight") ? residual_std : 0.02;
      for (double& x : v) x = sd * generator.normal();
    }
  }
}

std::string GPT::name() const {
  return fmt::format("GPT({} layers, {} heads, {} embd, vocab {}, block {})", config_.n_layer,
                     config_.n_head, config_.n_embd, config_.vocab_size, config_.block_size);
}

Tensor GPT::forward(const Tensor& idx) {
  if (idx.rank() != 2) {
    throw ShapeError(
        fmt::format("{}: the token ids must be [B, T] ({} vs [B, T])", name(), idx.shape()));
  }
  if (idx.shape()[1] > config_.block_size) {
    throw ValueError(
        fmt::format("{}: a sequence of {} tokens is longer than block_size {} ({} vs "
                    "[B, {}])",
                    name(), idx.shape()[1], config_.block_size, idx.shape(), config_.block_size));
  }
  // lm_head tied to wte: [B, T, C] x [V, C]^T -> [B, T, V], one dgemm through the transpose flag.
  return matmul(transformer_->forward(idx), transformer_->token_embedding(), {.transpose_b = true});
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) {
  if (targets.shape() != idx.shape()) {
    throw ShapeError(fmt::format("{}: loss needs targets of the ids' shape ({} vs {})", name(),
                                 targets.shape(), idx.shape()));
  }
  const Tensor logits = forward(idx);
  const auto n = static_cast<std::int64_t>(idx.numel());
  return cross_entropy_with_logits(reshape(logits, {n, config_.vocab_size}),
                                   reshape(targets.detach(), {n}));
}

std::vector<std::pair<std::string, Tensor>> GPT::state_dict() const {
  auto state = named_parameters();
  state.emplace_back("lm_head.weight", transformer_->token_embedding());
  return state;
}

std::int64_t GPT::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += static_cast<std::int64_t>(p.numel());
  return n;
}

Tensor GPT::generate(const Tensor& idx, std::int64_t max_new_tokens, double temperature,
                     std::optional<std::int64_t> top_k, Generator& generator) {
  if (!(temperature > 0.0) || !std::isfinite(temperature)) {
    throw ValueError(fmt::format("{}: generate needs a positive finite temperature (got {})",
                                 name(), temperature));
  }
  if (top_k && *top_k < 1) {
    throw ValueError(fmt::format("{}: generate needs top_k >= 1 (got {})", name(), *top_k));
  }
  if (max_new_tokens < 0) {
    throw ValueError(
        fmt::format("{}: generate needs max_new_tokens >= 0 (got {})", name(), max_new_tokens));
  }
  if (idx.rank() != 2 || idx.shape()[1] < 1) {
    throw ShapeError(fmt::format("{}: generate needs a context [B, T] with T >= 1 ({} vs [B, T])",
                                 name(), idx.shape()));
  }
  NoGradGuard no_grad;
  const std::int64_t B = idx.shape()[0], V = config_.vocab_size;
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(B));
  const auto values = idx.values();
  const std::int64_t T0 = idx.shape()[1];
  for (std::int64_t b = 0; b < B; ++b) {
    rows[static_cast<std::size_t>(b)].assign(values.begin() + b * T0,
                                             values.begin() + (b + 1) * T0);
  }
  for (std::int64_t step = 0; step < max_new_tokens; ++step) {
    const std::int64_t T =
        std::min<std::int64_t>(static_cast<std::int64_t>(rows[0].size()), config_.block_size);
    std::vector<double> context;
    context.reserve(static_cast<std::size_t>(B * T));
    for (const auto& row : rows) context.insert(context.end(), row.end() - T, row.end());
    const Tensor logits = forward(from_values(std::move(context), {B, T}));  // [B, T, V]
    std::vector<double> last(static_cast<std::size_t>(B * V));
    const auto z = logits.values();
    for (std::int64_t b = 0; b < B; ++b) {
      const auto* from = z.data() + (b * T + T - 1) * V;
      double* to = last.data() + b * V;
      for (std::int64_t v = 0; v < V; ++v) to[v] = from[v] / temperature;
      if (top_k && *top_k < V) {
        std::vector<double> sorted(to, to + V);
        std::nth_element(sorted.begin(), sorted.begin() + (*top_k - 1), sorted.end(),
                         std::greater<>());
        const double kth = sorted[static_cast<std::size_t>(*top_k - 1)];
        for (std::int64_t v = 0; v < V; ++v) {
          if (to[v] < kth) to[v] = -std::numeric_limits<double>::infinity();
        }
      }
    }
    const Tensor probs = softmax(from_values(std::move(last), {B, V}), -1);
    const Tensor next = multinomial(probs, 1, generator);  // [B, 1]
    for (std::int64_t b = 0; b < B; ++b) {
      rows[static_cast<std::size_t>(b)].push_back(next.values()[static_cast<std::size_t>(b)]);
    }
  }
  std::vector<double> out;
  for (const auto& row : rows) out.insert(out.end(), row.begin(), row.end());
  return from_values(std::move(out), {B, T0 + max_new_tokens});
}

}  // namespace tapegrad::nn
