#pragma once
// makemore's character MLP (Bengio et al. 2003, "A Neural Probabilistic Language Model"; A.
// Karpathy's makemore, part 2) on the words of a word list: the previous `block_size` characters
// are embedded, concatenated, passed through one tanh layer, and a softmax over the vocabulary
// predicts the next character. The vocabulary is the end token '.' (index 0; it also pads the
// context before a word's first letter) and the 26 letters a-z.
//
//   contexts [B, block]  --wte-->  [B, block, n_embd]  --reshape-->  [B, block * n_embd]
//   --mlp.0 (Linear) + tanh-->  [B, n_hidden]  --mlp.2 (Linear)-->  logits [B, vocab]
//   loss = cross_entropy_with_logits(logits, targets)      (mean nats per predicted character)
//
// Parameter names are those of makemore's MLP module (wte = nn.Embedding, mlp = nn.Sequential of
// Linear, Tanh, Linear), so a checkpoint loads into that PyTorch model with load_state_dict:
//   wte.weight [vocab, n_embd], mlp.0.weight [n_hidden, block * n_embd], mlp.0.bias [n_hidden],
//   mlp.2.weight [vocab, n_hidden], mlp.2.bias [vocab].
//
// Header-only so that examples/char_mlp.cpp (the command line) and tests/test_char_mlp.cpp use
// the same data, baseline, model, training loop and checkpoint code. Nothing here differentiates
// by hand: gradients come from the tape.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <tapegrad/tapegrad.hpp>

namespace char_mlp {

using tapegrad::Tensor;

// The end token first, then the letters: symbol i is kVocabulary[i].
inline constexpr std::string_view kVocabulary = ".abcdefghijklmnopqrstuvwxyz";
inline constexpr char kEndToken = '.';
inline const std::filesystem::path kDefaultWords = "/usr/share/dict/words";  // Debian wamerican

// The index of a symbol of kVocabulary, or -1.
inline std::int64_t symbol_index(char c) {
  const auto at = kVocabulary.find(c);
  return at == std::string_view::npos ? -1 : static_cast<std::int64_t>(at);
}

struct Sizes {
  std::int64_t vocab_size = static_cast<std::int64_t>(kVocabulary.size());  // 27
  std::int64_t block_size = 3;                                              // context characters
  std::int64_t n_embd = 10;                                                 // embedding per char
  std::int64_t n_hidden = 200;                                              // tanh units
};

// ------------------------------------------------------------------------------------------
// Words

// A word the model is trained on: one or more letters a-z and nothing else (no capitals, no
// apostrophes, no accented letters).
inline bool is_plain_word(std::string_view word) {
  return !word.empty() &&
         std::all_of(word.begin(), word.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

struct WordList {
  std::vector<std::string> words;  // the plain words, in file order
  std::size_t lines = 0;           // lines read, plain or not
};

// Reads one word per line and keeps the plain ones. A file that cannot be opened is a
// std::runtime_error naming it and the Debian package that provides the default one.
inline WordList read_words(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(fmt::format(
        "cannot read the word list {} (for /usr/share/dict/words: apt-get install wamerican)",
        path.string()));
  }
  WordList list;
  for (std::string line; std::getline(in, line);) {
    ++list.lines;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_plain_word(line)) list.words.push_back(line);
  }
  return list;
}

struct WordSplit {
  std::vector<std::string> train, validation, test;
};

// Shuffles the words with `seed` (Fisher-Yates on tapegrad's Generator, so the split is the same
// on every platform) and cuts them 80/10/10: the first floor(0.8 n) train, the next floor(0.1 n)
// validate, the rest test.
inline WordSplit split_words(std::vector<std::string> words, std::uint64_t seed) {
  tapegrad::Generator generator(seed);
  for (std::size_t i = words.size(); i > 1; --i) {
    std::swap(words[i - 1], words[generator.below(i)]);
  }
  const std::size_t n = words.size(), n_train = n * 8 / 10, n_validation = n / 10;
  WordSplit split;
  split.train.assign(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(n_train));
  split.validation.assign(words.begin() + static_cast<std::ptrdiff_t>(n_train),
                          words.begin() + static_cast<std::ptrdiff_t>(n_train + n_validation));
  split.test.assign(words.begin() + static_cast<std::ptrdiff_t>(n_train + n_validation),
                    words.end());
  return split;
}

// ------------------------------------------------------------------------------------------
// Examples: one per predicted character. A word of n letters gives n + 1 of them (its letters,
// then the end token), each with the block_size symbols before it, padded with '.'.
//   "cat", block 3:  ...->c  ..c->a  .ca->t  cat->.

struct Examples {
  std::int64_t block_size = 0;
  std::vector<double> contexts;  // [size, block_size] symbol indices
  std::vector<double> targets;   // [size]
  std::size_t size() const { return targets.size(); }
};

inline Examples make_examples(const std::vector<std::string>& words, std::int64_t block_size) {
  Examples ex;
  ex.block_size = block_size;
  std::vector<double> context(static_cast<std::size_t>(block_size));
  for (const std::string& word : words) {
    std::fill(context.begin(), context.end(), 0.0);
    for (std::size_t i = 0; i <= word.size(); ++i) {
      const double next = i < word.size() ? static_cast<double>(symbol_index(word[i])) : 0.0;
      ex.contexts.insert(ex.contexts.end(), context.begin(), context.end());
      ex.targets.push_back(next);
      if (block_size > 0) {
        std::rotate(context.begin(), context.begin() + 1, context.end());
        context.back() = next;
      }
    }
  }
  return ex;
}

struct Batch {
  Tensor contexts;  // [B, block_size]
  Tensor targets;   // [B]
};

// The examples at `rows`, as tensors.
inline Batch gather_batch(const Examples& ex, const std::vector<std::size_t>& rows) {
  const auto block = static_cast<std::size_t>(ex.block_size);
  std::vector<double> contexts, targets;
  contexts.reserve(rows.size() * block);
  targets.reserve(rows.size());
  for (const std::size_t r : rows) {
    contexts.insert(contexts.end(), ex.contexts.begin() + static_cast<std::ptrdiff_t>(r * block),
                    ex.contexts.begin() + static_cast<std::ptrdiff_t>((r + 1) * block));
    targets.push_back(ex.targets[r]);
  }
  const auto n = static_cast<std::int64_t>(rows.size());
  return {tapegrad::from_values(std::move(contexts), {n, ex.block_size}),
          tapegrad::from_values(std::move(targets), {n})};
}

// `batch_size` examples drawn uniformly with replacement (makemore's torch.randint).
inline Batch random_batch(const Examples& ex, std::size_t batch_size,
                          tapegrad::Generator& generator) {
  std::vector<std::size_t> rows(batch_size);
  for (auto& r : rows) r = generator.below(ex.size());
  return gather_batch(ex, rows);
}

// ------------------------------------------------------------------------------------------
// The exact bigram model: P(next | previous) from the training counts, each count plus
// `smoothing` (makemore's +1, so no pair has probability 0). Its loss is the mean negative log
// likelihood per predicted character over the same events the MLP predicts (each letter and the
// end token, the previous symbol being '.' at a word's start).

struct Bigram {
  std::int64_t vocab_size = static_cast<std::int64_t>(kVocabulary.size());
  double smoothing = 1.0;
  std::vector<double> counts;  // [vocab, vocab], row = previous symbol, column = next

  static Bigram fit(const std::vector<std::string>& words, double smoothing = 1.0) {
    Bigram b;
    b.smoothing = smoothing;
    b.counts.assign(static_cast<std::size_t>(b.vocab_size * b.vocab_size), 0.0);
    for (const std::string& word : words) {
      std::int64_t prev = 0;
      for (std::size_t i = 0; i <= word.size(); ++i) {
        const std::int64_t next = i < word.size() ? symbol_index(word[i]) : 0;
        b.counts[static_cast<std::size_t>(prev * b.vocab_size + next)] += 1.0;
        prev = next;
      }
    }
    return b;
  }

  double log_prob(std::int64_t prev, std::int64_t next) const {
    double row = 0.0;
    for (std::int64_t j = 0; j < vocab_size; ++j) {
      row += counts[static_cast<std::size_t>(prev * vocab_size + j)] + smoothing;
    }
    return std::log((counts[static_cast<std::size_t>(prev * vocab_size + next)] + smoothing) / row);
  }

  // Mean nats per predicted character over `words`.
  double loss(const std::vector<std::string>& words) const {
    double total = 0.0;
    std::size_t events = 0;
    for (const std::string& word : words) {
      std::int64_t prev = 0;
      for (std::size_t i = 0; i <= word.size(); ++i) {
        const std::int64_t next = i < word.size() ? symbol_index(word[i]) : 0;
        total -= log_prob(prev, next);
        ++events;
        prev = next;
      }
    }
    return total / static_cast<double>(std::max<std::size_t>(events, 1));
  }
};

// ------------------------------------------------------------------------------------------
// The model

class CharMLP : public tapegrad::nn::Module {
 public:
  CharMLP(const Sizes& sizes, tapegrad::Generator& generator) : sizes_(sizes) {
    using namespace tapegrad::nn;
    if (sizes.vocab_size < 2 || sizes.block_size < 1 || sizes.n_embd < 1 || sizes.n_hidden < 1) {
      throw tapegrad::ValueError(fmt::format(
          "CharMLP: sizes must be positive and the vocabulary at least 2 (vocab {}, block {}, "
          "n_embd {}, n_hidden {})",
          sizes.vocab_size, sizes.block_size, sizes.n_embd, sizes.n_hidden));
    }
    // Registration order fixes the order of parameters() and of PyTorch's state_dict.
    wte_ = register_module("wte",
                           std::make_shared<Embedding>(sizes.vocab_size, sizes.n_embd, generator));
    mlp_ = register_module("mlp",
                           MLP({sizes.block_size * sizes.n_embd, sizes.n_hidden, sizes.vocab_size},
                               Activation::tanh, generator));
  }

  // contexts [B, block_size] (symbol indices) -> logits [B, vocab_size].
  Tensor forward(const Tensor& contexts) override {
    if (contexts.rank() != 2 || contexts.shape()[1] != sizes_.block_size) {
      throw tapegrad::ShapeError(fmt::format("{}: contexts must be [B, {}] ({} vs [B, {}])", name(),
                                             sizes_.block_size, contexts.shape(),
                                             sizes_.block_size));
    }
    const std::int64_t B = contexts.shape()[0];
    const Tensor emb = (*wte_)(contexts);  // [B, block, n_embd]
    return (*mlp_)(tapegrad::reshape(emb, {B, sizes_.block_size * sizes_.n_embd}));
  }

  std::string name() const override {
    return fmt::format("CharMLP(vocab {}, block {}, n_embd {}, n_hidden {})", sizes_.vocab_size,
                       sizes_.block_size, sizes_.n_embd, sizes_.n_hidden);
  }

  const Sizes& sizes() const { return sizes_; }
  std::size_t parameter_count() const {
    std::size_t n = 0;
    for (const Tensor& p : parameters()) n += p.numel();
    return n;
  }

 private:
  Sizes sizes_;
  std::shared_ptr<tapegrad::nn::Embedding> wte_;
  std::shared_ptr<tapegrad::nn::Sequential> mlp_;
};

// Mean loss (nats per character) over all of `ex`, in chunks, recording nothing.
inline double evaluate(CharMLP& model, const Examples& ex, std::size_t chunk = 8192) {
  tapegrad::NoGradGuard no_grad;
  double total = 0.0;
  std::vector<std::size_t> rows;
  for (std::size_t begin = 0; begin < ex.size(); begin += chunk) {
    rows.clear();
    for (std::size_t r = begin; r < std::min(ex.size(), begin + chunk); ++r) rows.push_back(r);
    const Batch b = gather_batch(ex, rows);
    const Tensor loss = tapegrad::nn::cross_entropy_with_logits(model(b.contexts), b.targets,
                                                                tapegrad::nn::Reduction::sum);
    total += loss.item();
  }
  return total / static_cast<double>(std::max<std::size_t>(ex.size(), 1));
}

// ------------------------------------------------------------------------------------------
// Sampling: start from a context of end tokens, draw the next symbol from
// softmax(logits / temperature) restricted to the top_k largest logits (0: all), shift it into
// the context, stop at the end token (or after max_length letters).

struct SampleOptions {
  double temperature = 1.0;  // > 0; below 1 sharpens, above 1 flattens
  std::int64_t top_k = 0;    // keep the k most likely symbols (0 or >= vocab: all)
  std::size_t max_length = 40;
};

inline std::string sample_word(CharMLP& model, tapegrad::Generator& generator,
                               const SampleOptions& options = {}) {
  if (!(options.temperature > 0.0) || !std::isfinite(options.temperature)) {
    throw tapegrad::ValueError(fmt::format(
        "sample_word: temperature must be positive and finite (got {})", options.temperature));
  }
  if (options.top_k < 0) {
    throw tapegrad::ValueError(
        fmt::format("sample_word: top_k must be 0 (off) or positive (got {})", options.top_k));
  }
  tapegrad::NoGradGuard no_grad;
  const Sizes& s = model.sizes();
  std::vector<double> context(static_cast<std::size_t>(s.block_size), 0.0);
  std::string word;
  while (word.size() < options.max_length) {
    Tensor logits = model(tapegrad::from_values(context, {1, s.block_size})) / options.temperature;
    logits = tapegrad::reshape(logits, {s.vocab_size});
    if (options.top_k > 0 && options.top_k < s.vocab_size) {
      // nanoGPT's rule: drop every logit below the k-th largest (ties with it stay).
      std::vector<double> sorted(logits.values().begin(), logits.values().end());
      std::nth_element(sorted.begin(), sorted.begin() + (options.top_k - 1), sorted.end(),
                       std::greater<>());
      const double kth = sorted[static_cast<std::size_t>(options.top_k - 1)];
      std::vector<double> drop(sorted.size());
      for (std::size_t j = 0; j < drop.size(); ++j) drop[j] = logits.values()[j] < kth ? 1.0 : 0.0;
      logits =
          tapegrad::masked_fill(logits, tapegrad::from_values(drop, {s.vocab_size}), -INFINITY);
    }
    const Tensor probs = tapegrad::softmax(logits, -1);
    const auto next = static_cast<std::int64_t>(tapegrad::multinomial(probs, 1, generator).item());
    if (next == 0) break;
    word.push_back(kVocabulary[static_cast<std::size_t>(next)]);
    std::rotate(context.begin(), context.begin() + 1, context.end());
    context.back() = static_cast<double>(next);
  }
  return word;
}

// ------------------------------------------------------------------------------------------
// Training: minibatches drawn with replacement, Adam (or SGD), the learning rate annealed along
// half a cosine from lr to lr_min over the run (nn::CosineAnnealingLR stepped once per step).

struct TrainOptions {
  std::int64_t steps = 50000;
  std::size_t batch_size = 64;
  std::string optimizer = "adam";  // adam | sgd (plain, as makemore's lecture)
  double lr = 1e-2;
  double lr_min = 1e-4;
  std::uint64_t seed = 42;           // the minibatch draws (init uses its own Generator)
  std::int64_t eval_every = 0;       // steps between validation losses (0: steps / 10)
  std::int64_t progress_every = 50;  // steps between progress callbacks
};

struct Progress {
  std::int64_t step = 0;       // steps done
  double train_loss = 0.0;     // mean minibatch loss since the last report (NaN at step 0)
  double lr = 0.0;             // the learning rate of the last step
  double seconds = 0.0;        // since training started
  double validation_loss = 0;  // only in evaluation reports
};

struct TrainCallbacks {
  std::function<void(const Progress&)> on_progress;  // every progress_every steps
  std::function<void(const Progress&)> on_eval;  // at step 0, every eval_every steps, at the end
};

// Trains `model` on `train`, measuring the loss on `validation` at intervals. Returns the last
// validation loss.
inline double train(CharMLP& model, const Examples& train, const Examples& validation,
                    const TrainOptions& options, const TrainCallbacks& callbacks = {}) {
  using Clock = std::chrono::steady_clock;
  if (options.steps < 1 || options.batch_size < 1 || train.size() == 0) {
    throw tapegrad::ValueError(
        fmt::format("char_mlp::train: needs steps >= 1, batch_size >= 1 and examples (got {}, {}, "
                    "{})",
                    options.steps, options.batch_size, train.size()));
  }
  std::unique_ptr<tapegrad::nn::Optimizer> optimizer;
  if (options.optimizer == "sgd") {
    optimizer = std::make_unique<tapegrad::nn::SGD>(model.parameters(),
                                                    tapegrad::nn::SGDOptions{.lr = options.lr});
  } else if (options.optimizer == "adam") {
    optimizer = std::make_unique<tapegrad::nn::Adam>(model.parameters(),
                                                     tapegrad::nn::AdamOptions{.lr = options.lr});
  } else {
    throw tapegrad::ValueError(fmt::format(
        "char_mlp::train: optimizer must be adam or sgd (got '{}')", options.optimizer));
  }
  tapegrad::nn::CosineAnnealingLR schedule(*optimizer, options.steps, options.lr_min);
  tapegrad::Generator generator(options.seed);
  const std::int64_t eval_every =
      options.eval_every > 0 ? options.eval_every : std::max<std::int64_t>(1, options.steps / 10);
  const auto start = Clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  double loss_sum = 0.0, eval_loss_sum = 0.0, validation_loss = 0.0;
  std::int64_t since_progress = 0, since_eval = 0;
  if (callbacks.on_eval) {  // where training starts from: about ln(vocab) at initialisation
    callbacks.on_eval(
        {0, std::nan(""), optimizer->learning_rate(), seconds(), evaluate(model, validation)});
  }
  tapegrad::Tape tape;  // cleared every step: its node storage is reused, memory stays flat
  for (std::int64_t step = 1; step <= options.steps; ++step) {
    const Batch b = random_batch(train, options.batch_size, generator);
    const double lr = optimizer->learning_rate();
    const Tensor loss = tapegrad::nn::cross_entropy_with_logits(model(b.contexts), b.targets);
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    schedule.step();
    const double l = loss.item();
    tape.clear();
    loss_sum += l;
    eval_loss_sum += l;
    ++since_progress;
    ++since_eval;
    if (callbacks.on_progress && (step % options.progress_every == 0 || step == options.steps)) {
      callbacks.on_progress({step, loss_sum / static_cast<double>(since_progress), lr, seconds()});
      loss_sum = 0.0;
      since_progress = 0;
    }
    if (step % eval_every == 0 || step == options.steps) {
      validation_loss = evaluate(model, validation);
      if (callbacks.on_eval) {
        callbacks.on_eval({step, eval_loss_sum / static_cast<double>(since_eval), lr, seconds(),
                           validation_loss});
      }
      eval_loss_sum = 0.0;
      since_eval = 0;
    }
  }
  return validation_loss;
}

// ------------------------------------------------------------------------------------------
// Checkpoints: safetensors with the parameters under the names above, and in __metadata__ the
// vocabulary and the sizes (enough to rebuild the model), the split that defines the validation
// set, and whatever the caller adds (the run's figures).

inline std::map<std::string, std::string> checkpoint_metadata(const Sizes& sizes) {
  return {{"model", "char_mlp"},
          {"architecture",
           fmt::format("embedding {} x {}, context {}, {}-{} tanh, {}-{} softmax", sizes.vocab_size,
                       sizes.n_embd, sizes.block_size, sizes.block_size * sizes.n_embd,
                       sizes.n_hidden, sizes.n_hidden, sizes.vocab_size)},
          {"vocabulary", std::string(kVocabulary)},
          {"end_token", std::string(1, kEndToken)},
          {"vocab_size", std::to_string(sizes.vocab_size)},
          {"block_size", std::to_string(sizes.block_size)},
          {"n_embd", std::to_string(sizes.n_embd)},
          {"n_hidden", std::to_string(sizes.n_hidden)}};
}

inline void save_checkpoint(const std::filesystem::path& path, const CharMLP& model,
                            const std::map<std::string, std::string>& extra = {}) {
  auto metadata = checkpoint_metadata(model.sizes());
  for (const auto& [key, value] : extra) metadata[key] = value;
  tapegrad::io::save_safetensors(path, model.named_parameters(), metadata);
}

struct Loaded {
  std::unique_ptr<CharMLP> model;
  std::map<std::string, std::string> metadata;
};

// Rebuilds the model from a checkpoint's metadata and loads its parameters (all or nothing, see
// io::load_into). A checkpoint of another model or vocabulary, or with sizes missing, is a
// tapegrad::io::FormatError naming the file and the key.
inline Loaded load_checkpoint(const std::filesystem::path& path) {
  const tapegrad::io::SafetensorsFile file = tapegrad::io::read_safetensors(path);
  const auto& meta = file.metadata;
  const auto require = [&](const std::string& key) -> const std::string& {
    const auto it = meta.find(key);
    if (it == meta.end()) {
      throw tapegrad::io::FormatError(
          fmt::format("char_mlp: {} has no '{}' in its __metadata__ (not a char_mlp checkpoint?)",
                      path.string(), key));
    }
    return it->second;
  };
  const auto size = [&](const std::string& key) {
    const std::string& text = require(key);
    try {
      std::size_t used = 0;
      const long long v = std::stoll(text, &used);
      if (used == text.size() && v > 0) return static_cast<std::int64_t>(v);
    } catch (const std::exception&) {
    }
    throw tapegrad::io::FormatError(
        fmt::format("char_mlp: {}: __metadata__ '{}' must be a positive integer (got '{}')",
                    path.string(), key, text));
  };
  if (require("vocabulary") != kVocabulary) {
    throw tapegrad::io::FormatError(
        fmt::format("char_mlp: {} has the vocabulary '{}'; this program knows '{}'", path.string(),
                    require("vocabulary"), kVocabulary));
  }
  Sizes sizes{.vocab_size = size("vocab_size"),
              .block_size = size("block_size"),
              .n_embd = size("n_embd"),
              .n_hidden = size("n_hidden")};
  if (sizes.vocab_size != static_cast<std::int64_t>(kVocabulary.size())) {
    throw tapegrad::io::FormatError(
        fmt::format("char_mlp: {}: vocab_size {} does not match the vocabulary's {} symbols",
                    path.string(), sizes.vocab_size, kVocabulary.size()));
  }
  tapegrad::Generator unused(0);  // the initial values are overwritten by the file's
  Loaded loaded{std::make_unique<CharMLP>(sizes, unused), meta};
  tapegrad::io::NamedTensors parameters = loaded.model->named_parameters();
  tapegrad::io::load_into(path, parameters);
  return loaded;
}

}  // namespace char_mlp
