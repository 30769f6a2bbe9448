// examples/char_mlp (makemore's character MLP): its data, baseline and checkpoint in closed
// form, one forward+backward against PyTorch float64, a short training run that beats the
// bigram, and the checkpoint round trip. The runs on real words need /usr/share/dict/words
// (Debian wamerican) and skip with the reason when it is absent.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>

#include <fmt/format.h>

#include "../examples/char_mlp.hpp"
#include "torch_oracle.hpp"

namespace tg = tapegrad;
namespace fs = std::filesystem;

namespace {

#define SKIP_WITHOUT_WORDS()                                                             \
  if (!fs::exists(char_mlp::kDefaultWords)) {                                            \
    GTEST_SKIP() << char_mlp::kDefaultWords << " is absent (apt-get install wamerican)"; \
  }

// A fresh path in the temporary directory, removed when the test ends.
struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name)
      : path(fs::temp_directory_path() /
             fmt::format("tapegrad-{}-{}-{}", name, ::getpid(),
                         ::testing::UnitTest::GetInstance()->random_seed())) {}
  ~TempFile() {
    std::error_code ignored;
    fs::remove(path, ignored);
  }
};

// A small slice of the real split: the first words of each part.
char_mlp::WordSplit small_split(std::size_t n_train, std::size_t n_validation) {
  char_mlp::WordSplit split =
      char_mlp::split_words(char_mlp::read_words(char_mlp::kDefaultWords).words, 42);
  split.train.resize(std::min(n_train, split.train.size()));
  split.validation.resize(std::min(n_validation, split.validation.size()));
  return split;
}

}  // namespace

TEST(CharMlpClosedForm, ExamplesPadTheContextWithTheEndToken) {
  const char_mlp::Examples ex = char_mlp::make_examples({"cat"}, 3);
  // ...->c  ..c->a  .ca->t  cat->.   (c = 3, a = 1, t = 20, . = 0)
  EXPECT_EQ(ex.size(), 4u);
  EXPECT_EQ(ex.contexts, (std::vector<double>{0, 0, 0, 0, 0, 3, 0, 3, 1, 3, 1, 20}));
  EXPECT_EQ(ex.targets, (std::vector<double>{3, 1, 20, 0}));
}

TEST(CharMlpClosedForm, PlainWordsAreLowercaseLettersOnly) {
  EXPECT_TRUE(char_mlp::is_plain_word("zebra"));
  EXPECT_FALSE(char_mlp::is_plain_word(""));
  EXPECT_FALSE(char_mlp::is_plain_word("Zebra"));
  EXPECT_FALSE(char_mlp::is_plain_word("zebra's"));
  EXPECT_FALSE(char_mlp::is_plain_word("caf\xc3\xa9"));
}

TEST(CharMlpClosedForm, SplitIsEightyTenTenAndSeeded) {
  std::vector<std::string> words;
  for (int i = 0; i < 1003; ++i) words.push_back(fmt::format("w{}", i));
  const auto a = char_mlp::split_words(words, 7), b = char_mlp::split_words(words, 7);
  EXPECT_EQ(a.train.size(), 802u);
  EXPECT_EQ(a.validation.size(), 100u);
  EXPECT_EQ(a.test.size(), 101u);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.train, char_mlp::split_words(words, 8).train);
}

TEST(CharMlpClosedForm, BigramLossFromSmoothedCounts) {
  // Training words "ab", "b": pairs .a a b b . . b b .  -> counts (.a 1, .b 1, ab 1, b. 2).
  // With +1 smoothing over 27 symbols: P(a|.) = 2/29, P(b|a) = 2/28, P(.|b) = 3/29.
  const auto bigram = char_mlp::Bigram::fit({"ab", "b"}, 1.0);
  EXPECT_DOUBLE_EQ(bigram.log_prob(0, 1), std::log(2.0 / 29.0));
  EXPECT_DOUBLE_EQ(bigram.log_prob(1, 2), std::log(2.0 / 28.0));
  EXPECT_DOUBLE_EQ(bigram.log_prob(2, 0), std::log(3.0 / 29.0));
  // "ab" predicts a, b, . : mean of the three negative logs.
  EXPECT_NEAR(bigram.loss({"ab"}),
              -(std::log(2.0 / 29.0) + std::log(2.0 / 28.0) + std::log(3.0 / 29.0)) / 3.0, 1e-15);
  // Unsmoothed, an unseen pair has probability 0: infinite loss, as the exact model says.
  EXPECT_TRUE(std::isinf(char_mlp::Bigram::fit({"ab"}, 0.0).loss({"ba"})));
}

TEST(CharMlpClosedForm, ParameterNamesAreMakemoresAndShapesFollowTheSizes) {
  tg::Generator gen(1);
  const char_mlp::CharMLP model({}, gen);
  const auto named = model.named_parameters();
  ASSERT_EQ(named.size(), 5u);
  EXPECT_EQ(named[0].first, "wte.weight");
  EXPECT_EQ(named[0].second.shape(), tg::Shape({27, 10}));
  EXPECT_EQ(named[1].first, "mlp.0.weight");
  EXPECT_EQ(named[1].second.shape(), tg::Shape({200, 30}));
  EXPECT_EQ(named[2].first, "mlp.0.bias");
  EXPECT_EQ(named[3].first, "mlp.2.weight");
  EXPECT_EQ(named[3].second.shape(), tg::Shape({27, 200}));
  EXPECT_EQ(named[4].first, "mlp.2.bias");
  EXPECT_EQ(model.parameter_count(), 27u * 10 + 200 * 30 + 200 + 27 * 200 + 27);
}

TEST(CharMlpClosedForm, TopKOneSamplesTheLikeliestSymbolEveryTime) {
  tg::Generator init(3);
  char_mlp::CharMLP model({}, init);
  // Greedy decoding by hand: the argmax of each step's logits.
  std::string greedy;
  {
    tg::NoGradGuard no_grad;
    std::vector<double> context(3, 0.0);
    while (greedy.size() < 40) {
      const tg::Tensor logits = model(tg::from_values(context, {1, 3}));
      const auto z = logits.values();
      const auto best = std::max_element(z.begin(), z.end()) - z.begin();
      if (best == 0) break;
      greedy.push_back(char_mlp::kVocabulary[static_cast<std::size_t>(best)]);
      context = {context[1], context[2], static_cast<double>(best)};
    }
  }
  tg::Generator a(1), b(2);
  EXPECT_EQ(char_mlp::sample_word(model, a, {.top_k = 1}), greedy);
  EXPECT_EQ(char_mlp::sample_word(model, b, {.temperature = 3.0, .top_k = 1}), greedy);
}

TEST(CharMlpMisuse, BadContextsTemperatureAndCheckpoint) {
  tg::Generator gen(1);
  char_mlp::CharMLP model({}, gen);
  EXPECT_THROW(model(tg::zeros({4, 2})), tg::ShapeError);
  EXPECT_THROW(model(tg::zeros({4})), tg::ShapeError);
  EXPECT_THROW(model(tg::full({1, 3}, 27.0)), tg::ValueError);  // symbol out of range
  EXPECT_THROW(char_mlp::sample_word(model, gen, {.temperature = 0.0}), tg::ValueError);
  EXPECT_THROW(char_mlp::sample_word(model, gen, {.top_k = -1}), tg::ValueError);
  // A safetensors file of another model is refused with the missing key named.
  TempFile file("not-char-mlp");
  tg::io::save_safetensors(file.path, {{"w", tg::zeros({2})}});
  try {
    char_mlp::load_checkpoint(file.path);
    ADD_FAILURE() << "loaded a file without char_mlp metadata";
  } catch (const tg::io::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'vocabulary'"), std::string::npos) << e.what();
  }
}

// One forward+backward of the default-size model on a batch, from the same initial weights in
// tapegrad and in PyTorch float64 (tests/interop/char_mlp_torch.py loads tapegrad's safetensors
// into makemore's module): the same loss and every parameter gradient to <= 1e-10 relative.
TEST(TorchParity, CharMlpForwardBackward) {
  if (!tg::test::TorchOracle::available()) {
    GTEST_SKIP() << "PyTorch is not installed (apt-get install python3-torch)";
  }
  tg::Generator init(11), data(12);
  char_mlp::CharMLP model({}, init);
  // 96 examples: 288 symbol lookups over 27 rows, so the embedding's scatter-add sums repeats.
  const std::int64_t B = 96;
  std::vector<double> contexts(static_cast<std::size_t>(B * 3)),
      targets(static_cast<std::size_t>(B));
  for (auto& c : contexts) c = static_cast<double>(data.below(27));
  for (auto& t : targets) t = static_cast<double>(data.below(27));
  const tg::Tensor x = tg::from_values(contexts, {B, 3}), y = tg::from_values(targets, {B});
  tg::io::NamedTensors file = model.named_parameters();
  for (auto& [name, p] : file) p = p.detach();  // the initial weights, before any update
  double loss_value = 0.0;
  {
    tg::Tape tape;
    const tg::Tensor loss = tg::nn::cross_entropy_with_logits(model(x), y);
    loss.backward();
    loss_value = loss.item();
  }
  for (const auto& [name, p] : model.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    file.emplace_back("grad." + name, p.grad());
  }
  file.emplace_back("batch.contexts", x);
  file.emplace_back("batch.targets", y);
  file.emplace_back("loss", tg::from_values({loss_value}, {1}));
  TempFile path("char-mlp-parity.safetensors");
  tg::io::save_safetensors(path.path, file, char_mlp::checkpoint_metadata(model.sizes()));

  const std::string command = fmt::format("/usr/bin/python3 {}/char_mlp_torch.py {} 2>&1",
                                          TAPEGRAD_INTEROP_DIR, path.path.string());
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  ASSERT_TRUE(pipe) << command;
  std::string out;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe.get()) != nullptr) out += buffer;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("worst relative error ([0-9.eE+-]+)"))) << out;
  const double worst = std::stod(m[1].str());
  std::printf("%s", out.c_str());
  EXPECT_LE(worst, 1e-10) << out;
  EXPECT_NE(out.find("grad wte.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("grad mlp.2.bias"), std::string::npos) << out;
}

// A few hundred steps on 4000 training words beat the exact bigram fitted on the same words, on
// 600 held-out validation words.
TEST(CharMlpTraining, ShortRunBeatsTheBigramOnASubset) {
  SKIP_WITHOUT_WORDS();
  const char_mlp::WordSplit split = small_split(4000, 600);
  const auto train = char_mlp::make_examples(split.train, 3);
  const auto validation = char_mlp::make_examples(split.validation, 3);
  const double bigram = char_mlp::Bigram::fit(split.train).loss(split.validation);
  tg::Generator init(1);
  char_mlp::CharMLP model({}, init);
  const double before = char_mlp::evaluate(model, validation);
  const double after = char_mlp::train(
      model, train, validation, {.steps = 600, .batch_size = 64, .lr = 1e-2, .lr_min = 1e-3});
  std::printf("validation loss %.4f -> %.4f, bigram %.4f (%zu train examples)\n", before, after,
              bigram, train.size());
  EXPECT_GT(before, 3.0);  // about ln 27 = 3.30 at initialisation
  EXPECT_LT(after, bigram - 0.05);
}

// Save, reload: the same parameters bit for bit, the same validation loss, the same samples, and
// the metadata names the vocabulary and the sizes.
TEST(CharMlpCheckpoint, RoundTripGivesTheSameValidationLoss) {
  SKIP_WITHOUT_WORDS();
  const char_mlp::WordSplit split = small_split(2000, 300);
  const auto train = char_mlp::make_examples(split.train, 2);
  const auto validation = char_mlp::make_examples(split.validation, 2);
  tg::Generator init(2);
  char_mlp::CharMLP model({.block_size = 2, .n_embd = 6, .n_hidden = 40}, init);
  const double trained = char_mlp::train(model, train, validation, {.steps = 150});
  TempFile path("char-mlp-roundtrip.safetensors");
  char_mlp::save_checkpoint(path.path, model, {{"steps", "150"}});

  const char_mlp::Loaded loaded = char_mlp::load_checkpoint(path.path);
  EXPECT_EQ(loaded.metadata.at("vocabulary"), ".abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(loaded.metadata.at("block_size"), "2");
  EXPECT_EQ(loaded.metadata.at("n_embd"), "6");
  EXPECT_EQ(loaded.metadata.at("n_hidden"), "40");
  EXPECT_EQ(loaded.metadata.at("vocab_size"), "27");
  EXPECT_EQ(loaded.metadata.at("steps"), "150");
  const auto ours = model.named_parameters(), theirs = loaded.model->named_parameters();
  ASSERT_EQ(ours.size(), theirs.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].first, theirs[i].first);
    EXPECT_TRUE(std::equal(ours[i].second.values().begin(), ours[i].second.values().end(),
                           theirs[i].second.values().begin()))
        << ours[i].first;
  }
  EXPECT_EQ(char_mlp::evaluate(*loaded.model, validation), trained);
  tg::Generator a(9), b(9);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(char_mlp::sample_word(model, a), char_mlp::sample_word(*loaded.model, b));
  }
}
