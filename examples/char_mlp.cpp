// makemore's character MLP (Bengio et al. 2003) on the words of /usr/share/dict/words (Debian
// wamerican): context of 3 characters, embedding 10, 200 tanh units, softmax over '.' and a-z.
// Prints the exact bigram model's validation loss beside the network's, samples 20 words, keeps
// the model as safetensors and can reload it. `char_mlp --help` lists the options.
//
//   char_mlp --save char_mlp.safetensors --metrics char_mlp.csv --plot char_mlp.png
//   char_mlp --load char_mlp.safetensors --temperature 0.8 --top-k 10
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <unordered_set>

#include <fmt/core.h>

#include "char_mlp.hpp"
#include "training_display.hpp"

using namespace tapegrad;

namespace {

struct Options {
  std::string words = char_mlp::kDefaultWords.string();
  std::uint64_t split_seed = 42;
  std::uint64_t seed = 1;
  char_mlp::Sizes sizes;
  char_mlp::TrainOptions train;
  double smoothing = 1.0;
  int samples = 20;
  char_mlp::SampleOptions sample;
  std::string save, load, metrics, plot;
};

struct Data {
  std::size_t lines = 0, kept = 0;
  char_mlp::WordSplit split;
};

Data load_data(const Options& options) {
  char_mlp::WordList list = char_mlp::read_words(options.words);
  Data data{list.lines, list.words.size(), {}};
  data.split = char_mlp::split_words(std::move(list.words), options.split_seed);
  return data;
}

// Draws `count` words and says how many are training words (memorised) and how many are new.
void print_samples(char_mlp::CharMLP& model, const Options& options,
                   const std::vector<std::string>& train_words) {
  Generator generator(options.seed + 2);  // its own stream: sampling never shifts training
  const std::unordered_set<std::string> known(train_words.begin(), train_words.end());
  std::vector<std::string> words;
  int seen = 0;
  for (int i = 0; i < options.samples; ++i) {
    words.push_back(char_mlp::sample_word(model, generator, options.sample));
    seen += known.contains(words.back()) ? 1 : 0;
  }
  fmt::print("{} samples (temperature {}, top-k {}), {} of them training words:\n  {}\n",
             options.samples, options.sample.temperature,
             options.sample.top_k > 0 ? std::to_string(options.sample.top_k) : "off", seen,
             fmt::join(words, " "));
}

int run_load(const Options& options) {
  char_mlp::Loaded loaded = char_mlp::load_checkpoint(options.load);
  const auto& meta = loaded.metadata;
  fmt::print("loaded {}: {} ({} parameters)\n", options.load, meta.at("architecture"),
             loaded.model->parameter_count());
  const auto saved = [&](const char* key) {
    const auto it = meta.find(key);
    return it == meta.end() ? std::string("?") : it->second;
  };
  // The validation set is rebuilt from the words file and the split seed the model was trained
  // with, so the loss printed here is comparable with the one printed (and saved) by training.
  Options same = options;
  if (meta.contains("split_seed")) same.split_seed = std::stoull(meta.at("split_seed"));
  if (meta.contains("words") && options.words == char_mlp::kDefaultWords.string()) {
    same.words = meta.at("words");
  }
  try {
    const Data data = load_data(same);
    const double validation = char_mlp::evaluate(
        *loaded.model,
        char_mlp::make_examples(data.split.validation, loaded.model->sizes().block_size));
    const std::string recorded = saved("validation_loss");
    const bool same_loss = recorded != "?" && fmt::format("{:.17g}", validation) == recorded;
    fmt::print("validation loss {:.4f} on {} words of {} (split seed {}); {}\n", validation,
               data.split.validation.size(), same.words, same.split_seed,
               same_loss
                   ? "as saved"
                   : fmt::format("the checkpoint says {} (another word list or split?)", recorded));
    fmt::print("bigram validation loss {} (saved)\n", saved("bigram_validation_loss"));
    print_samples(*loaded.model, options, data.split.train);
  } catch (const std::runtime_error& e) {
    fmt::print("no validation loss: {}\n", e.what());
    print_samples(*loaded.model, options, {});
  }
  return 0;
}

int run_train(const Options& options) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Data data = load_data(options);
  const auto& split = data.split;
  const std::int64_t block = options.sizes.block_size;
  const char_mlp::Examples train = char_mlp::make_examples(split.train, block);
  const char_mlp::Examples validation = char_mlp::make_examples(split.validation, block);
  const char_mlp::Examples test = char_mlp::make_examples(split.test, block);
  const char_mlp::Bigram bigram = char_mlp::Bigram::fit(split.train, options.smoothing);
  const double bigram_validation = bigram.loss(split.validation);

  Generator init(options.seed);
  char_mlp::CharMLP model(options.sizes, init);
  const auto& t = options.train;
  fmt::print(
      "char_mlp: {} plain a-z words of {} lines in {} -> {} train / {} validation / {} test "
      "(split seed {}); {} train examples; model {} ({} parameters); {} lr {} -> {} cosine, "
      "batch {}, {} steps\n",
      data.kept, data.lines, options.words, split.train.size(), split.validation.size(),
      split.test.size(), options.split_seed, train.size(),
      char_mlp::checkpoint_metadata(options.sizes).at("architecture"), model.parameter_count(),
      t.optimizer, t.lr, t.lr_min, t.batch_size, t.steps);
  fmt::print("bigram model (training counts + {} smoothing): validation loss {:.4f}\n",
             options.smoothing, bigram_validation);
  std::fflush(stdout);

  std::ofstream metrics;
  if (!options.metrics.empty()) {
    metrics.open(options.metrics);
    metrics << "step,train_loss,validation_loss,bigram_validation_loss,lr,seconds\n";
  }
  const bool terminal = display::stdout_is_terminal();
  char_mlp::TrainCallbacks callbacks;
  if (terminal) {
    callbacks.on_progress = [&](const char_mlp::Progress& p) {
      const double rate = static_cast<double>(p.step) / std::max(p.seconds, 1e-9);
      display::draw_progress(
          "step", static_cast<std::size_t>(p.step), static_cast<std::size_t>(t.steps),
          fmt::format("loss {:.4f} lr {:.2e} {:.0f} steps/s ETA {:.0f}s", p.train_loss, p.lr, rate,
                      static_cast<double>(t.steps - p.step) / rate));
    };
  }
  callbacks.on_eval = [&](const char_mlp::Progress& p) {
    if (terminal) display::clear_progress();
    const bool has_train = !std::isnan(p.train_loss);  // none before the first step
    fmt::print("step {:>6}/{} {:7.1f}s train loss {} validation loss {:.4f} (bigram {:.4f})\n",
               p.step, t.steps, p.seconds,
               has_train ? fmt::format("{:.4f}", p.train_loss) : std::string("  -   "),
               p.validation_loss, bigram_validation);
    std::fflush(stdout);
    if (metrics.is_open()) {
      metrics << fmt::format("{},{},{:.6f},{:.6f},{:.6g},{:.3f}\n", p.step,
                             has_train ? fmt::format("{:.6f}", p.train_loss) : std::string(),
                             p.validation_loss, bigram_validation, p.lr, p.seconds);
      metrics.flush();
    }
  };
  const double validation_loss = char_mlp::train(model, train, validation, t, callbacks);
  const double train_loss = char_mlp::evaluate(model, train);
  const double test_loss = char_mlp::evaluate(model, test);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print(
      "done in {:.1f}s: validation loss {:.4f} vs bigram {:.4f} ({:+.4f} nats/char); train {:.4f} "
      "(bigram {:.4f}), test {:.4f} (bigram {:.4f})\n",
      seconds, validation_loss, bigram_validation, validation_loss - bigram_validation, train_loss,
      bigram.loss(split.train), test_loss, bigram.loss(split.test));
  print_samples(model, options, split.train);

  if (!options.save.empty()) {
    char_mlp::save_checkpoint(
        options.save, model,
        {{"words", options.words},
         {"split_seed", std::to_string(options.split_seed)},
         {"seed", std::to_string(options.seed)},
         {"steps", std::to_string(t.steps)},
         {"validation_loss", fmt::format("{:.17g}", validation_loss)},
         {"test_loss", fmt::format("{:.17g}", test_loss)},
         {"bigram_validation_loss", fmt::format("{:.17g}", bigram_validation)},
         {"bigram_smoothing", fmt::format("{}", options.smoothing)}});
    fmt::print("saved {}\n", options.save);
  }
  if (!options.plot.empty()) {
    if (options.metrics.empty()) {
      fmt::print("--plot needs --metrics PATH.csv (the plot is drawn from it)\n");
    } else {
      display::write_plot(
          options.metrics, options.plot,
          {.title = fmt::format("char_mlp on {} ({} steps, batch {})", options.words, t.steps,
                                t.batch_size),
           .xlabel = "step",
           .ylabel = "loss (nats per character)",
           .y2label = "",
           .key = "center right"},
          {{.x = 1, .y = 2, .title = "train loss (minibatches since the last point)"},
           {.x = 1, .y = 3, .title = "validation loss"},
           {.x = 1, .y = 4, .title = "bigram validation loss", .style = "lines"}});
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "Train makemore's character MLP (Bengio et al. 2003) on a word list with tapegrad, or "
      "reload one and sample."};
  auto& t = options.train;
  app.add_option("--words", options.words, "word list, one per line (plain a-z words are kept)")
      ->capture_default_str();
  app.add_option("--split-seed", options.split_seed, "seed of the 80/10/10 word split")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "seed of initialisation, minibatches and sampling")
      ->capture_default_str();
  app.add_option("--block-size", options.sizes.block_size, "context characters")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--n-embd", options.sizes.n_embd, "embedding size per character")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--n-hidden", options.sizes.n_hidden, "tanh units")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", t.steps, "training steps (minibatches)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", t.batch_size, "examples per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--optimizer", t.optimizer, "adam or sgd")
      ->capture_default_str()
      ->check(CLI::IsMember({"adam", "sgd"}));
  app.add_option("--lr", t.lr, "initial learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--lr-min", t.lr_min, "final learning rate (half a cosine from --lr)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--eval-every", t.eval_every, "steps between validation losses (0: steps/10)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--smoothing", options.smoothing, "count added to every bigram pair")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--samples", options.samples, "words to sample at the end")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", options.sample.temperature, "sampling temperature (logits / T)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--top-k", options.sample.top_k, "sample among the k likeliest symbols (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--save", options.save, "write the trained model (safetensors)");
  app.add_option("--load", options.load, "load a saved model, print its validation loss, sample");
  app.add_option("--metrics", options.metrics, "write the validation-interval metrics (CSV)");
  app.add_option("--plot", options.plot, "draw the metrics with gnuplot (PNG; needs --metrics)");
  CLI11_PARSE(app, argc, argv);
  t.seed = options.seed + 1;  // minibatches: a stream of their own, apart from the init
  try {
    return options.load.empty() ? run_train(options) : run_load(options);
  } catch (const std::exception& e) {
    fmt::print(stderr, "char_mlp: {}\n", e.what());
    return 1;
  }
}
