#pragma once
// A GPT as nanoGPT's model.py (Karpathy), without dropout: token and position embeddings,
// n_layer pre-LayerNorm blocks, a final LayerNorm and a language-model head tied to the token
// embedding. Composed from nn layers and ops only, so every gradient comes from the tape and can
// be checked; the parameter names are nanoGPT's, so a checkpoint loads into nanoGPT's GPT.
//
//   tapegrad::Generator gen(1337);
//   tapegrad::nn::GPT model({.vocab_size = 65, .block_size = 64}, gen);
//   Tensor logits = model(tokens);                  // tokens [B, T] -> logits [B, T, 65]
//   Tensor loss = model.loss(tokens, targets);      // mean cross-entropy over the B*T positions
//
// The computation (x [B, T, C], C = n_embd):
//   x = wte[idx] + wpe[0..T-1]                      (Embedding rows, positions broadcast over B)
//   each block h.i:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
//                    mlp(u) = c_proj(gelu(c_fc(u))),  c_fc C -> 4C, c_proj 4C -> C, exact gelu
//   logits = ln_f(x) wte^T                           (lm_head: the same tensor as wte, no bias)
//   derivative: from the composition; wte's gradient is the sum of the embedding's scatter-add
//   and the head's product, as for any tensor used twice.
//
// Parameters, in this order (named_parameters(), one entry per tensor, as nanoGPT's):
//   transformer.wte.weight [V, C], transformer.wpe.weight [block_size, C],
//   transformer.h.<i>.ln_1.{weight,bias} [C], transformer.h.<i>.attn.c_attn.{weight [3C, C], bias
//   [3C]}, transformer.h.<i>.attn.c_proj.{weight [C, C], bias [C]}, transformer.h.<i>.ln_2.*,
//   transformer.h.<i>.mlp.c_fc.{weight [4C, C], bias [4C]}, transformer.h.<i>.mlp.c_proj.{weight
//   [C, 4C], bias [C]}, transformer.ln_f.{weight,bias} [C].
// lm_head.weight is not a second parameter (an optimizer would otherwise update the tied tensor
// twice); state_dict() adds it, as PyTorch's state_dict() of nanoGPT does, sharing wte's tensor.
//
// Initialisation is nanoGPT's: every Linear weight and both embeddings ~ N(0, 0.02^2), the
// residual projections (attn.c_proj.weight, mlp.c_proj.weight) ~ N(0, (0.02 / sqrt(2 n_layer))^2),
// biases 0, LayerNorm weights 1, drawn in named_parameters() order from the generator.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/core/random.hpp"
#include "tapegrad/nn/layers.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/normalization.hpp"
#include "tapegrad/nn/sequence.hpp"

namespace tapegrad::nn {

struct GPTConfig {
  std::int64_t vocab_size = 0;   // V, required
  std::int64_t block_size = 64;  // the longest sequence (the rows of wpe)
  std::int64_t n_layer = 2;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 64;  // C, a multiple of n_head
};

// nanoGPT's MLP: c_proj(gelu(c_fc(x))), [..., C] -> [..., C] through 4C hidden features.
class GPTMLP : public Module {
 public:
  GPTMLP(std::int64_t n_embd, Generator& generator);
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "GPTMLP(64 -> 256 -> 64)"

 private:
  std::int64_t n_embd_;
  std::shared_ptr<Linear> c_fc_, c_proj_;
};

// nanoGPT's Block: x + attn(ln_1(x)), then + mlp(ln_2(x)); [B, T, C] -> [B, T, C].
class GPTBlock : public Module {
 public:
  GPTBlock(std::int64_t n_embd, std::int64_t n_head, Generator& generator);
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "GPTBlock(64, 4 heads)"

 private:
  std::int64_t n_embd_, n_head_;
  std::shared_ptr<LayerNorm> ln_1_, ln_2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<GPTMLP> mlp_;
};

// nanoGPT's `transformer` ModuleDict: idx [B, T] -> ln_f(blocks(wte[idx] + wpe[0..T-1])) [B, T, C].
class GPTTransformer : public Module {
 public:
  GPTTransformer(const GPTConfig& config, Generator& generator);
  Tensor forward(const Tensor& idx) override;
  std::string name() const override { return "GPTTransformer"; }
  Tensor token_embedding() const { return wte_->weight(); }

 private:
  GPTConfig config_;
  std::shared_ptr<Embedding> wte_, wpe_;
  std::shared_ptr<Sequential> h_;
  std::shared_ptr<LayerNorm> ln_f_;
};

class GPT : public Module {
 public:
  // A vocab_size, block_size, n_layer, n_head or n_embd below 1, or n_embd not a multiple of
  // n_head, is a ValueError naming the field.
  GPT(GPTConfig config, Generator& generator);

  // idx [B, T] (doubles holding token ids in [0, V)) -> logits [B, T, V]. A rank other than 2 is
  // a ShapeError; T > block_size is a ValueError (wpe has no row for it); an id out of range is
  // index_select's ValueError.
  Tensor forward(const Tensor& idx) override;
  std::string name() const override;  // "GPT(2 layers, 4 heads, 64 embd, vocab 65, block 64)"

  // Mean cross-entropy of the next token: F.cross_entropy(logits.view(-1, V), targets.view(-1)).
  //   shapes: idx [B, T], targets [B, T] (token ids) -> a scalar; other target shapes are a
  //   ShapeError.
  Tensor loss(const Tensor& idx, const Tensor& targets);

  // named_parameters() plus "lm_head.weight" (the same tensor handle as transformer.wte.weight),
  // in nanoGPT's state_dict() order: what a checkpoint stores.
  std::vector<std::pair<std::string, Tensor>> state_dict() const;

  // nanoGPT's generate(): appends max_new_tokens tokens to each row of idx [B, T0], each drawn by
  // multinomial from softmax(logits of the last position / temperature), keeping only the top_k
  // logits when top_k is given (ties at the k-th value are all kept). The context is cropped to
  // the last block_size tokens. Records nothing. temperature <= 0, top_k < 1, or
  // max_new_tokens < 0 is a ValueError. Returns [B, T0 + max_new_tokens].
  Tensor generate(const Tensor& idx, std::int64_t max_new_tokens, double temperature,
                  std::optional<std::int64_t> top_k, Generator& generator);

  const GPTConfig& config() const { return config_; }
  // The number of distinct parameter values (the tied head counted once), as nanoGPT prints.
  std::int64_t num_parameters() const;

 private:
  GPTConfig config_;
  std::shared_ptr<GPTTransformer> transformer_;
};

}  // namespace tapegrad::nn
