// The tiny GPT (nn/gpt.hpp, examples/tiny_gpt.cpp): nanoGPT's names, the tied head, one
// forward+backward against a PyTorch float64 model loading the same checkpoint, finite
// differences of the whole model, and misuse.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <tapegrad/tapegrad.hpp>

#include "../examples/tiny_gpt_data.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified
namespace fs = std::filesystem;

// A scratch folder removed at the end of the test.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& tag)
      : dir(fs::temp_directory_path() / fmt::format("tapegrad-{}-{}", tag, getpid())) {
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
};

Tensor ids(std::vector<double> v, const Shape& shape) {
  return from_values(std::move(v), shape);
}

// Deterministic token ids in [0, V).
Tensor token_batch(std::int64_t B, std::int64_t T, std::int64_t V, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<double> v(static_cast<std::size_t>(B * T));
  for (double& x : v) x = static_cast<double>(gen.below(static_cast<std::uint64_t>(V)));
  return ids(std::move(v), {B, T});
}

// Spreads the weights out (nanoGPT's init is N(0, 0.02^2): tiny gradients, a weak test); biases
// and LayerNorm parameters become non-trivial too, so every term of every rule is exercised.
void scramble(nn::GPT& model, std::uint64_t seed, double scale) {
  Generator gen(seed);
  for (auto& [name, p] : model.named_parameters()) {
    const bool ln_weight = name.find(".ln_") != std::string::npos && name.ends_with(".weight");
    for (double& x : p.mutable_values()) x = (ln_weight ? 1.0 : 0.0) + scale * gen.normal();
  }
}

TEST(TinyGptClosedForm, ParameterNamesAreNanoGptsAndTheHeadIsTied) {
  Generator gen(1);
  nn::GPT model({.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8}, gen);
  std::vector<std::string> names;
  for (const auto& [name, p] : model.state_dict()) names.push_back(name);
  std::vector<std::string> expected = {"transformer.wte.weight", "transformer.wpe.weight"};
  for (const char* layer : {"0", "1"}) {
    for (const char* leaf :
         {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
          "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}) {
      expected.push_back(fmt::format("transformer.h.{}.{}", layer, leaf));
    }
  }
  expected.insert(expected.end(),
                  {"transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"});
  EXPECT_EQ(names, expected);
  // One tensor, not a copy; and counted once among the parameters (an optimizer steps it once).
  EXPECT_TRUE(model.state_dict().back().second.same(model.parameter("transformer.wte.weight")));
  EXPECT_EQ(model.named_parameters().size(), expected.size() - 1);
  // nanoGPT's count: 2 * 12 C^2 + 13 C per layer, V C + T C, 2 C for ln_f.
  EXPECT_EQ(model.num_parameters(), 2 * (12 * 64 + 13 * 8) + 11 * 8 + 8 * 8 + 2 * 8);
  // nanoGPT's init: zero biases, unit LayerNorm weights.
  EXPECT_EQ(model.parameter("transformer.h.1.mlp.c_fc.bias").values()[3], 0.0);
  EXPECT_EQ(model.parameter("transformer.ln_f.weight").values()[5], 1.0);
}

TEST(TinyGptClosedForm, LogitsAreTheFinalFeaturesTimesTheTokenEmbedding) {
  // With every block's output projections zero, each block adds nothing, so
  // logits = ln_f(wte[idx] + wpe[t]) wte^T exactly.
  Generator gen(2);
  nn::GPT model({.vocab_size = 5, .block_size = 4, .n_layer = 1, .n_head = 1, .n_embd = 3}, gen);
  scramble(model, 3, 0.7);
  for (const char* name :
       {"transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias",
        "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias"}) {
    for (double& x : model.parameter(name).mutable_values()) x = 0.0;
  }
  const Tensor idx = ids({4, 0, 2}, {1, 3});
  const Tensor logits = model(idx);
  const auto wte = model.parameter("transformer.wte.weight").values();
  const auto wpe = model.parameter("transformer.wpe.weight").values();
  const auto g = model.parameter("transformer.ln_f.weight").values();
  const auto b = model.parameter("transformer.ln_f.bias").values();
  for (int t = 0; t < 3; ++t) {
    const auto token = static_cast<std::size_t>(idx.values()[static_cast<std::size_t>(t)]);
    double x[3], m = 0, v = 0;
    for (int c = 0; c < 3; ++c) m += (x[c] = wte[token * 3 + c] + wpe[t * 3 + c]) / 3;
    for (int c = 0; c < 3; ++c) v += (x[c] - m) * (x[c] - m) / 3;
    for (int c = 0; c < 3; ++c) x[c] = (x[c] - m) / std::sqrt(v + 1e-5) * g[c] + b[c];
    for (int w = 0; w < 5; ++w) {
      const double expected = x[0] * wte[w * 3] + x[1] * wte[w * 3 + 1] + x[2] * wte[w * 3 + 2];
      EXPECT_NEAR(logits.at({0, t, w}), expected, 1e-14);
    }
  }
}

TEST(TinyGptGradCheck, WholeModelLossAgainstFiniteDifferences) {
  Generator gen(4);
  auto model = std::make_shared<nn::GPT>(
      nn::GPTConfig{.vocab_size = 5, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 4}, gen);
  scramble(*model, 5, 0.5);
  const auto named = model->named_parameters();
  std::vector<Tensor> inputs;
  for (const auto& [name, p] : named) inputs.push_back(p.detach().requires_grad_());
  const Tensor idx = ids({1, 4, 4, 0, 2, 3, 1, 1}, {2, 4});
  const Tensor targets = ids({4, 4, 0, 2, 3, 1, 1, 0}, {2, 4});
  const Function f = [&](const std::vector<Tensor>& in) {
    for (std::size_t i = 0; i < named.size(); ++i) model->set_parameter(named[i].first, in[i]);
    return model->loss(idx, targets);
  };
  const GradcheckResult r = gradcheck(f, inputs);
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.elements_checked, 288u);  // every parameter element, for the one scalar loss
}

TEST(TinyGptMisuse, BadShapesAndSettingsAreTypedErrors) {
  Generator gen(6);
  EXPECT_THROW(nn::GPT({.vocab_size = 0}, gen), ValueError);
  EXPECT_THROW(nn::GPT({.vocab_size = 5, .n_head = 3, .n_embd = 8}, gen), ValueError);
  nn::GPT model({.vocab_size = 5, .block_size = 4, .n_layer = 1, .n_head = 1, .n_embd = 4}, gen);
  EXPECT_THROW(model(ids({1, 2}, {2})), ShapeError);
  try {
    model(token_batch(1, 5, 5, 1));
    ADD_FAILURE() << "a sequence longer than block_size was accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("longer than block_size 4"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(model(ids({1, 5}, {1, 2})), ValueError);  // token 5 with a vocabulary of 5
  EXPECT_THROW(model.loss(token_batch(2, 3, 5, 1), token_batch(3, 2, 5, 1)), ShapeError);
  EXPECT_THROW(model.generate(ids({1}, {1, 1}), 3, 0.0, std::nullopt, gen), ValueError);
  EXPECT_THROW(model.generate(ids({1}, {1, 1}), 3, 1.0, 0, gen), ValueError);
}

TEST(TinyGptClosedForm, GenerateWithTopOneIsGreedyAndCropsToTheBlock) {
  Generator gen(7);
  nn::GPT model({.vocab_size = 6, .block_size = 3, .n_layer = 1, .n_head = 1, .n_embd = 4}, gen);
  scramble(model, 8, 0.8);
  Generator sampler(9);
  const Tensor out = model.generate(ids({2, 5}, {1, 2}), 6, 1.0, 1, sampler);
  ASSERT_EQ(out.shape(), Shape({1, 8}));
  // top-k 1 leaves one choice: each new token is the argmax of the last position's logits given
  // the last (at most) 3 tokens.
  NoGradGuard no_grad;
  std::vector<double> seq = {2, 5};
  for (int k = 0; k < 6; ++k) {
    const std::size_t T = std::min<std::size_t>(seq.size(), 3);
    const Tensor logits = model(ids({seq.end() - static_cast<std::ptrdiff_t>(T), seq.end()},
                                    {1, static_cast<std::int64_t>(T)}));
    const auto z = logits.values().subspan((T - 1) * 6, 6);
    seq.push_back(static_cast<double>(std::max_element(z.begin(), z.end()) - z.begin()));
  }
  EXPECT_EQ(std::vector<double>(out.values().begin(), out.values().end()), seq);
}

TEST(TinyGptMisuse, CheckpointWithAnUntiedHeadIsRejected) {
  Scratch scratch("gpt-untied");
  Generator gen(10);
  nn::GPT model({.vocab_size = 3, .block_size = 4, .n_layer = 1, .n_head = 1, .n_embd = 4}, gen);
  const std::u32string vocabulary = U"abc";
  const fs::path path = scratch.dir / "m.safetensors";
  tiny_gpt::save_checkpoint(path, model, vocabulary);
  tiny_gpt::Checkpoint checkpoint;
  auto loaded = tiny_gpt::load_checkpoint(path, checkpoint);
  EXPECT_EQ(checkpoint.vocabulary, vocabulary);
  EXPECT_EQ(loaded->config().n_embd, 4);
  const auto a = loaded->parameter("transformer.h.0.attn.c_attn.weight").values();
  const auto b = model.parameter("transformer.h.0.attn.c_attn.weight").values();
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
  // The same file with lm_head.weight changed: two values for one tied tensor.
  auto state = model.state_dict();
  state.back().second = model.parameter("transformer.wte.weight").detach() * 2.0;
  io::save_safetensors(path, state,
                       {{"vocabulary", "abc"},
                        {"vocab_size", "3"},
                        {"block_size", "4"},
                        {"n_layer", "1"},
                        {"n_head", "1"},
                        {"n_embd", "4"}});
  EXPECT_THROW(tiny_gpt::load_checkpoint(path, checkpoint), io::FormatError);
}

// max_i |a_i - b_i| / max_i |b_i|: the error relative to the tensor's own scale.
double relative_error(std::span<const double> a, std::span<const double> b) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

TEST(TinyGptTorchParity, OneForwardBackwardMatchesPyTorchFloat64) {
  if (!test::TorchOracle::available()) GTEST_SKIP() << "PyTorch is not installed";
  Scratch scratch("gpt-parity");
  // The default widths (4 heads of 16, 64 features, blocks of 64) on a small vocabulary.
  const nn::GPTConfig config{
      .vocab_size = 23, .block_size = 64, .n_layer = 2, .n_head = 4, .n_embd = 64};
  Generator gen(11);
  nn::GPT model(config, gen);
  scramble(model, 12, 0.2);
  std::u32string vocabulary;
  for (char32_t c = U'a'; c < U'a' + 23; ++c) vocabulary.push_back(c);
  tiny_gpt::save_checkpoint(scratch.dir / "weights.safetensors", model, vocabulary);
  const Tensor x = token_batch(3, 64, 23, 13), y = token_batch(3, 64, 23, 14);
  io::save_safetensors(scratch.dir / "batch.safetensors", {{"x", x}, {"y", y}});

  Tape tape;
  const Tensor loss = model.loss(x, y);
  loss.backward();

  const std::string command = fmt::format(
      "/usr/bin/python3 {}/interop/gpt_torch.py {} {} {} > {} 2>&1", TAPEGRAD_TESTS_DIR,
      (scratch.dir / "weights.safetensors").string(), (scratch.dir / "batch.safetensors").string(),
      (scratch.dir / "out.safetensors").string(), (scratch.dir / "log.txt").string());
  const int status = std::system(command.c_str());
  std::ifstream log_file(scratch.dir / "log.txt");
  const std::string log((std::istreambuf_iterator<char>(log_file)),
                        std::istreambuf_iterator<char>());
  ASSERT_EQ(status, 0) << log;
  const io::SafetensorsFile theirs = io::read_safetensors(scratch.dir / "out.safetensors");
  const double loss_error =
      std::abs(loss.item() - theirs.at("loss").item()) / std::abs(theirs.at("loss").item());
  EXPECT_LE(loss_error, 1e-12) << loss.item() << " vs " << theirs.at("loss").item();
  double worst = 0.0;
  std::string worst_name;
  std::size_t compared = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    const Tensor* g = theirs.find("grad." + name);
    ASSERT_NE(g, nullptr) << "PyTorch has no parameter " << name << "; " << log;
    ASSERT_EQ(g->shape(), p.shape()) << name;
    const double e = relative_error(p.grad().values(), g->values());
    if (e > worst) worst = e, worst_name = name;
    EXPECT_LE(e, 1e-10) << name;
    ++compared;
  }
  EXPECT_EQ(compared + 1, theirs.tensors.size());  // every PyTorch gradient was compared
  std::printf(
      "[ parity ] loss %.17g (relative error %.3g); %zu gradients, worst relative error %.3g "
      "(%s)\n",
      loss.item(), loss_error, compared, worst, worst_name.c_str());
}

}  // namespace
