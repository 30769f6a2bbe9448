#pragma once
// The tiny GPT's data and checkpoint helpers, shared by examples/tiny_gpt.cpp, its tests and its
// benchmark: the fortunes corpus as characters, the exact bigram baseline, random batches,
// nanoGPT's learning-rate schedule, and checkpoints that hold the vocabulary and sizes.
//
// (examples/fashion_mnist.cpp and char_mlp share progress and plot code of the same kind; the lead
// plans to unify them into one examples header.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace tiny_gpt {

using tapegrad::Tensor;

inline const char* const kFortunesDir = "/usr/share/games/fortunes";

// The corpus files: every regular file of `dir` except the indexes (.dat) and the UTF-8 links
// (.u8), in sorted name order.
inline std::vector<std::filesystem::path> corpus_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string ext = entry.path().extension().string();
    if (!entry.is_regular_file() || ext == ".dat" || ext == ".u8") continue;
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.filename() < b.filename(); });
  return files;
}

// UTF-8 bytes -> code points. A byte that does not start a valid sequence stands for itself
// (Latin-1), so no input is rejected and the decoding is still one-to-one on valid text.
inline std::u32string decode_utf8(const std::string& bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    const int extra = b < 0x80         ? 0
                      : (b >> 5) == 6  ? 1
                      : (b >> 4) == 14 ? 2
                      : (b >> 3) == 30 ? 3
                                       : -1;
    bool ok = extra >= 0 && i + static_cast<std::size_t>(extra) < bytes.size();
    char32_t c = extra == 0 ? b : extra == 1 ? (b & 0x1F) : extra == 2 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; ok && k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(bytes[i + static_cast<std::size_t>(k)]);
      ok = (next >> 6) == 2;
      c = (c << 6) | (next & 0x3F);
    }
    if (!ok) {
      out.push_back(b);
      ++i;
    } else {
      out.push_back(c);
      i += static_cast<std::size_t>(extra) + 1;
    }
  }
  return out;
}

inline std::string encode_utf8(const std::u32string& text) {
  std::string out;
  for (const char32_t c : text) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// The text tokenised by characters: vocabulary = the distinct code points, sorted; ids index it.
struct Corpus {
  std::u32string vocabulary;
  std::vector<std::int32_t> train, val;  // the first 90% of the ids, and the last 10%
  std::size_t files = 0;

  std::int64_t vocab_size() const { return static_cast<std::int64_t>(vocabulary.size()); }
};

// Ids of `text` under `vocabulary`; a character outside it is a ValueError.
inline std::vector<std::int32_t> encode(const std::u32string& text,
                                        const std::u32string& vocabulary) {
  std::map<char32_t, std::int32_t> id;
  for (std::size_t i = 0; i < vocabulary.size(); ++i)
    id[vocabulary[i]] = static_cast<std::int32_t>(i);
  std::vector<std::int32_t> out;
  out.reserve(text.size());
  for (const char32_t c : text) {
    const auto it = id.find(c);
    if (it == id.end()) {
      throw tapegrad::ValueError(fmt::format(
          "tiny_gpt: character U+{:04X} is not in the vocabulary", static_cast<std::uint32_t>(c)));
    }
    out.push_back(it->second);
  }
  return out;
}

inline std::string decode(const std::vector<double>& ids, const std::u32string& vocabulary) {
  std::u32string text;
  for (const double id : ids) text.push_back(vocabulary.at(static_cast<std::size_t>(id)));
  return encode_utf8(text);
}

// The corpus from raw text: the vocabulary of the whole text (as nanoGPT's shakespeare_char),
// split 90/10 in order.
inline Corpus make_corpus(const std::u32string& text, std::size_t files) {
  Corpus corpus;
  corpus.files = files;
  std::u32string vocabulary = text;
  std::sort(vocabulary.begin(), vocabulary.end());
  vocabulary.erase(std::unique(vocabulary.begin(), vocabulary.end()), vocabulary.end());
  corpus.vocabulary = vocabulary;
  const std::vector<std::int32_t> ids = encode(text, vocabulary);
  const auto n_train = static_cast<std::ptrdiff_t>(ids.size() * 9 / 10);
  corpus.train.assign(ids.begin(), ids.begin() + n_train);
  corpus.val.assign(ids.begin() + n_train, ids.end());
  return corpus;
}

// The fortunes text, concatenated in sorted file-name order, as characters. `limit` > 0 keeps the
// first `limit` characters. Throws tapegrad::io::FormatError when no file is found.
inline Corpus load_fortunes(const std::filesystem::path& dir = kFortunesDir,
                            std::size_t limit = 0) {
  const auto files = corpus_files(dir);
  if (files.empty()) {
    throw tapegrad::io::FormatError(fmt::format(
        "tiny_gpt: no fortune files under {} (apt-get install fortunes)", dir.string()));
  }
  std::string bytes;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::u32string text = decode_utf8(bytes);
  if (limit > 0 && text.size() > limit) text.resize(limit);
  return make_corpus(text, files.size());
}

// The exact bigram model from the training counts, add-one smoothed (a character pair never seen
// in training would otherwise cost infinitely many nats):
//   P(b | a) = (count(a, b) + 1) / (count(a) + V)
// and its mean negative log-likelihood over the consecutive pairs of `ids`.
struct Bigram {
  std::int64_t V = 0;
  std::vector<double> log_p;  // [V, V], row a: ln P(. | a)

  Bigram(const std::vector<std::int32_t>& train, std::int64_t vocab_size) : V(vocab_size) {
    const auto n = static_cast<std::size_t>(V);
    std::vector<double> counts(n * n, 1.0);
    for (std::size_t i = 0; i + 1 < train.size(); ++i) {
      counts[static_cast<std::size_t>(train[i]) * n + static_cast<std::size_t>(train[i + 1])] +=
          1.0;
    }
    log_p.resize(n * n);
    for (std::size_t a = 0; a < n; ++a) {
      double row = 0.0;
      for (std::size_t b = 0; b < n; ++b) row += counts[a * n + b];
      for (std::size_t b = 0; b < n; ++b) log_p[a * n + b] = std::log(counts[a * n + b] / row);
    }
  }

  double loss(const std::vector<std::int32_t>& ids) const {
    double nll = 0.0;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
      nll -= log_p[static_cast<std::size_t>(ids[i]) * static_cast<std::size_t>(V) +
                   static_cast<std::size_t>(ids[i + 1])];
    }
    return nll / static_cast<double>(ids.size() - 1);
  }
};

struct Batch {
  Tensor x, y;  // [B, T] ids, and the same shifted by one (the next characters)
};

// nanoGPT's get_batch: B windows of T + 1 characters at uniform random offsets.
inline Batch random_batch(const std::vector<std::int32_t>& ids, std::int64_t B, std::int64_t T,
                          tapegrad::Generator& generator) {
  if (ids.size() < static_cast<std::size_t>(T) + 2) {
    throw tapegrad::ValueError(
        fmt::format("tiny_gpt: {} characters are too few for windows of {} + 1", ids.size(), T));
  }
  std::vector<double> x, y;
  x.reserve(static_cast<std::size_t>(B * T));
  y.reserve(static_cast<std::size_t>(B * T));
  for (std::int64_t b = 0; b < B; ++b) {
    const auto start =
        static_cast<std::size_t>(generator.below(ids.size() - static_cast<std::size_t>(T)));
    for (std::int64_t t = 0; t < T; ++t) {
      x.push_back(ids[start + static_cast<std::size_t>(t)]);
      y.push_back(ids[start + static_cast<std::size_t>(t) + 1]);
    }
  }
  return {tapegrad::from_values(std::move(x), {B, T}), tapegrad::from_values(std::move(y), {B, T})};
}

// The mean loss over every target of `ids`, in consecutive non-overlapping windows of T (the last
// one shorter), batched B at a time, recording nothing: the exact validation loss of the split.
inline double full_loss(tapegrad::nn::GPT& model, const std::vector<std::int32_t>& ids,
                        std::int64_t B, std::int64_t T) {
  tapegrad::NoGradGuard no_grad;
  double nll = 0.0;
  std::size_t targets = 0;
  const std::size_t n = ids.size() - 1;  // positions that have a next character
  std::vector<double> x, y;
  std::int64_t rows = 0, width = T;
  const auto flush = [&] {
    if (rows == 0) return;
    const double loss =
        model.loss(tapegrad::from_values(x, {rows, width}), tapegrad::from_values(y, {rows, width}))
            .item();
    nll += loss * static_cast<double>(rows * width);
    targets += static_cast<std::size_t>(rows * width);
    x.clear();
    y.clear();
    rows = 0;
  };
  for (std::size_t start = 0; start < n; start += static_cast<std::size_t>(T)) {
    const auto len =
        static_cast<std::int64_t>(std::min<std::size_t>(static_cast<std::size_t>(T), n - start));
    if (len != width) {
      flush();
      width = len;
    }
    for (std::int64_t t = 0; t < len; ++t) {
      x.push_back(ids[start + static_cast<std::size_t>(t)]);
      y.push_back(ids[start + static_cast<std::size_t>(t) + 1]);
    }
    if (++rows == B) flush();
  }
  flush();
  return nll / static_cast<double>(targets);
}

// nanoGPT's get_lr: linear warm-up over `warmup` steps, then half a cosine from lr to min_lr at
// step `decay`, min_lr after.
inline double learning_rate_at(std::int64_t step, double lr, double min_lr, std::int64_t warmup,
                               std::int64_t decay) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
  if (step > decay) return min_lr;
  const double ratio = static_cast<double>(step - warmup) /
                       static_cast<double>(std::max<std::int64_t>(decay - warmup, 1));
  return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * ratio)) * (lr - min_lr);
}

// A checkpoint: nanoGPT's state_dict names (lm_head.weight stored as a copy of
// transformer.wte.weight, the two equal), with the vocabulary (UTF-8) and sizes in __metadata__.
inline void save_checkpoint(const std::filesystem::path& path, const tapegrad::nn::GPT& model,
                            const std::u32string& vocabulary,
                            std::map<std::string, std::string> extra = {}) {
  const auto& c = model.config();
  extra["format"] =
      "tapegrad tiny_gpt (nanoGPT names; lm_head.weight equals transformer.wte.weight)";
  extra["vocabulary"] = encode_utf8(vocabulary);
  extra["vocab_size"] = std::to_string(c.vocab_size);
  extra["block_size"] = std::to_string(c.block_size);
  extra["n_layer"] = std::to_string(c.n_layer);
  extra["n_head"] = std::to_string(c.n_head);
  extra["n_embd"] = std::to_string(c.n_embd);
  extra["bias"] = "true";
  tapegrad::io::save_safetensors(path, model.state_dict(), extra);
}

struct Checkpoint {
  tapegrad::nn::GPTConfig config;
  std::u32string vocabulary;
  std::map<std::string, std::string> metadata;
};

// Reads the sizes and vocabulary of a checkpoint and builds the model from them, with its weights.
// A missing metadata key, a vocabulary of the wrong size, a missing, extra or mis-shaped tensor,
// or an lm_head.weight that differs from transformer.wte.weight (they are one tensor) is a
// FormatError naming the file.
inline std::shared_ptr<tapegrad::nn::GPT> load_checkpoint(const std::filesystem::path& path,
                                                          Checkpoint& out) {
  const tapegrad::io::SafetensorsFile file = tapegrad::io::read_safetensors(path);
  const auto need = [&](const std::string& key) -> const std::string& {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) {
      throw tapegrad::io::FormatError(
          fmt::format("tiny_gpt: {} has no '{}' in its __metadata__", path.string(), key));
    }
    return it->second;
  };
  out.metadata = file.metadata;
  out.config = {.vocab_size = std::stoll(need("vocab_size")),
                .block_size = std::stoll(need("block_size")),
                .n_layer = std::stoll(need("n_layer")),
                .n_head = std::stoll(need("n_head")),
                .n_embd = std::stoll(need("n_embd"))};
  out.vocabulary = decode_utf8(need("vocabulary"));
  if (static_cast<std::int64_t>(out.vocabulary.size()) != out.config.vocab_size) {
    throw tapegrad::io::FormatError(
        fmt::format("tiny_gpt: {} has a vocabulary of {} characters but vocab_size {}",
                    path.string(), out.vocabulary.size(), out.config.vocab_size));
  }
  const Tensor* head = file.find("lm_head.weight");
  const Tensor* wte = file.find("transformer.wte.weight");
  if (head != nullptr && wte != nullptr && head->shape() == wte->shape() &&
      !std::equal(head->values().begin(), head->values().end(), wte->values().begin())) {
    throw tapegrad::io::FormatError(fmt::format(
        "tiny_gpt: {}: lm_head.weight differs from transformer.wte.weight, but the two are one "
        "tied tensor",
        path.string()));
  }
  tapegrad::Generator generator(0);
  auto model = std::make_shared<tapegrad::nn::GPT>(out.config, generator);
  auto state = model->state_dict();
  tapegrad::io::load_into(path, state);
  return model;
}

}  // namespace tiny_gpt
