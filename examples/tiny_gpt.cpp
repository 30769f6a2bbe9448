// A character GPT (nanoGPT's architecture and names) trained on the text of Debian's `fortunes`
// package, with the exact bigram model's validation loss beside it. `tiny_gpt --help` lists the
// options; the defaults train 2 layers, 4 heads, 64 features on windows of 64 characters.
//
//   tiny_gpt --save gpt.safetensors --metrics gpt.csv --plot gpt.png
//   tiny_gpt --load gpt.safetensors --prompt "Q: " --tokens 300 --temperature 0.8 --top-k 20
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>

#include <fmt/core.h>

#include "tiny_gpt_data.hpp"

using namespace tapegrad;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string data_dir = tiny_gpt::kFortunesDir;
  std::int64_t n_layer = 2, n_head = 4, n_embd = 64, block_size = 64;
  std::int64_t batch_size = 32;
  std::int64_t max_iters = 2000;
  std::int64_t warmup_iters = 100;
  std::int64_t eval_interval = 200;
  std::int64_t eval_iters = 20;
  double lr = 3e-3, min_lr = 3e-4, weight_decay = 0.1, beta2 = 0.99;
  std::uint64_t seed = 1337;
  std::size_t limit = 0;  // 0: the whole corpus
  std::int64_t tokens = 300;
  double temperature = 0.8;
  std::int64_t top_k = 0;  // 0: no top-k
  std::string prompt = "\n";
  std::string save, load, metrics, plot;
};

std::string sample(nn::GPT& model, const std::u32string& vocabulary, const Options& options,
                   Generator& generator) {
  std::vector<std::int32_t> ids =
      tiny_gpt::encode(tiny_gpt::decode_utf8(options.prompt), vocabulary);
  if (ids.empty()) ids.push_back(0);
  std::vector<double> context(ids.begin(), ids.end());
  const auto T0 = static_cast<std::int64_t>(context.size());
  const Tensor out = model.generate(
      from_values(std::move(context), {1, T0}), options.tokens, options.temperature,
      options.top_k > 0 ? std::optional<std::int64_t>(options.top_k) : std::nullopt, generator);
  return tiny_gpt::decode({out.values().begin(), out.values().end()}, vocabulary);
}

// nanoGPT's estimate_loss: the mean loss of `iters` random batches of a split, recording nothing.
double estimate_loss(nn::GPT& model, const std::vector<std::int32_t>& ids, const Options& options,
                     std::uint64_t seed) {
  NoGradGuard no_grad;
  Generator generator(seed);
  double sum = 0.0;
  for (std::int64_t i = 0; i < options.eval_iters; ++i) {
    const auto batch =
        tiny_gpt::random_batch(ids, options.batch_size, options.block_size, generator);
    sum += model.loss(batch.x, batch.y).item();
  }
  return sum / static_cast<double>(options.eval_iters);
}

void write_plot(const std::string& csv, const std::string& png, const std::string& title,
                double bigram) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    fmt::print("gnuplot is not installed: apt-get install gnuplot-nox, then run the script {}.gp\n",
               png);
  }
  const std::string script = png + ".gp";
  std::ofstream gp(script);
  gp << "set terminal pngcairo size 900,500\nset output '" << png << "'\n"
     << "set datafile separator ','\nset key top right\nset grid\n"
     << "set title '" << title << "'\nset xlabel 'step'\nset ylabel 'loss (nats per character)'\n"
     << "plot '" << csv << "' using 1:2 every ::1 with lines title 'train (estimate)', \\\n"
     << "     '" << csv
     << "' using 1:3 every ::1 with linespoints title 'validation (estimate)', \\\n"
     << "     " << bigram << " with lines dashtype 2 title 'bigram (validation)'\n";
  gp.close();
  if (std::system(fmt::format("gnuplot '{}'", script).c_str()) == 0) {
    fmt::print("wrote {}\n", png);
  } else {
    fmt::print("gnuplot failed; the script is {}\n", script);
  }
}

int sample_saved(const Options& options) {
  tiny_gpt::Checkpoint checkpoint;
  auto model = tiny_gpt::load_checkpoint(options.load, checkpoint);
  const auto& c = checkpoint.config;
  fmt::print("loaded {}: {} ({} parameters)\n", options.load, model->name(),
             model->num_parameters());
  if (auto it = checkpoint.metadata.find("val_loss"); it != checkpoint.metadata.end()) {
    fmt::print("its validation loss {} (bigram {})\n", it->second,
               checkpoint.metadata.contains("bigram_val_loss")
                   ? checkpoint.metadata.at("bigram_val_loss")
                   : "?");
  }
  (void)c;
  Generator generator(options.seed);
  fmt::print("--- sample (temperature {}, top-k {}) ---\n{}\n---\n", options.temperature,
             options.top_k > 0 ? std::to_string(options.top_k) : "off",
             sample(*model, checkpoint.vocabulary, options, generator));
  return 0;
}

int train(const Options& options) {
  const auto load_start = Clock::now();
  const tiny_gpt::Corpus corpus = tiny_gpt::load_fortunes(options.data_dir, options.limit);
  const tiny_gpt::Bigram bigram(corpus.train, corpus.vocab_size());
  const double bigram_val = bigram.loss(corpus.val);
  fmt::print(
      "fortunes: {} files, {} characters ({} train, {} validation), vocabulary {} ({:.1f}s)\n",
      corpus.files, corpus.train.size() + corpus.val.size(), corpus.train.size(), corpus.val.size(),
      corpus.vocab_size(), std::chrono::duration<double>(Clock::now() - load_start).count());
  fmt::print(
      "bigram (add-one counts of the training text): train {:.4f}, validation {:.4f} nats/char\n",
      bigram.loss(corpus.train), bigram_val);

  Generator generator(options.seed);
  nn::GPT model({.vocab_size = corpus.vocab_size(),
                 .block_size = options.block_size,
                 .n_layer = options.n_layer,
                 .n_head = options.n_head,
                 .n_embd = options.n_embd},
                generator);
  // nanoGPT's two groups: weight decay on the matrices (>= 2-D), none on biases and LayerNorms.
  std::vector<Tensor> decay, no_decay;
  for (const auto& p : model.parameters()) (p.rank() >= 2 ? decay : no_decay).push_back(p);
  nn::AdamW decayed(
      decay, {.lr = options.lr, .beta2 = options.beta2, .weight_decay = options.weight_decay});
  nn::AdamW plain(no_decay, {.lr = options.lr, .beta2 = options.beta2, .weight_decay = 0.0});
  fmt::print(
      "training {} ({} parameters) on random windows of {} characters, batch {}, {} steps: AdamW "
      "(lr {} warm-up {} steps, cosine to {}, weight decay {} on matrices, betas 0.9/{})\n",
      model.name(), model.num_parameters(), options.block_size, options.batch_size,
      options.max_iters, options.lr, options.warmup_iters, options.min_lr, options.weight_decay,
      options.beta2);
  std::fflush(stdout);

  std::ofstream metrics;
  if (!options.metrics.empty()) {
    metrics.open(options.metrics);
    metrics << "step,train_loss,val_loss,lr,seconds\n";
  }
  const bool terminal = isatty(fileno(stdout)) != 0;
  const auto run_start = Clock::now();
  Generator batches(options.seed + 1);
  double running = 0.0;
  for (std::int64_t step = 0; step <= options.max_iters; ++step) {
    const double lr = tiny_gpt::learning_rate_at(step, options.lr, options.min_lr,
                                                 options.warmup_iters, options.max_iters);
    if (step % options.eval_interval == 0 || step == options.max_iters) {
      // The same evaluation batches every time, so the curve compares like with like.
      const double train_loss = estimate_loss(model, corpus.train, options, options.seed + 2);
      const double val_loss = estimate_loss(model, corpus.val, options, options.seed + 3);
      const double seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
      if (terminal) fmt::print("\r\033[2K");
      fmt::print("step {:>5}/{}: train {:.4f} val {:.4f} (bigram {:.4f}) lr {:.2e} {:.0f}s\n", step,
                 options.max_iters, train_loss, val_loss, bigram_val, lr, seconds);
      std::fflush(stdout);
      if (metrics.is_open()) {
        metrics << fmt::format("{},{:.6f},{:.6f},{:.6e},{:.2f}\n", step, train_loss, val_loss, lr,
                               seconds);
        metrics.flush();
      }
    }
    if (step == options.max_iters) break;
    decayed.set_learning_rate(lr);
    plain.set_learning_rate(lr);
    const auto batch =
        tiny_gpt::random_batch(corpus.train, options.batch_size, options.block_size, batches);
    Tape tape;  // one tape per step: everything it recorded is freed at the end of the step
    const Tensor loss = model.loss(batch.x, batch.y);
    decayed.zero_grad();
    plain.zero_grad();
    loss.backward();
    decayed.step();
    plain.step();
    running = step == 0 ? loss.item() : 0.95 * running + 0.05 * loss.item();
    if (terminal && step % 5 == 0) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
      fmt::print(
          "\r\033[2Kstep {:>5} loss {:.4f} {:.0f} ms/step ETA {:.0f}s", step, running,
          1000.0 * elapsed / static_cast<double>(step + 1),
          elapsed / static_cast<double>(step + 1) * static_cast<double>(options.max_iters - step));
      std::fflush(stdout);
    }
  }
  const double train_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  const double val_loss =
      tiny_gpt::full_loss(model, corpus.val, options.batch_size, options.block_size);
  fmt::print(
      "done: {} steps in {:.1f}s ({:.0f} ms/step); validation loss over the whole split {:.4f} vs "
      "bigram {:.4f}: {:.4f} nats/char better\n",
      options.max_iters, train_seconds,
      1000.0 * train_seconds / static_cast<double>(options.max_iters), val_loss, bigram_val,
      bigram_val - val_loss);
  Generator sampler(options.seed + 4);
  fmt::print("--- sample (temperature {}, top-k {}) ---\n{}\n---\n", options.temperature,
             options.top_k > 0 ? std::to_string(options.top_k) : "off",
             sample(model, corpus.vocabulary, options, sampler));
  if (!options.save.empty()) {
    tiny_gpt::save_checkpoint(options.save, model, corpus.vocabulary,
                              {{"steps", std::to_string(options.max_iters)},
                               {"val_loss", fmt::format("{:.4f}", val_loss)},
                               {"bigram_val_loss", fmt::format("{:.4f}", bigram_val)}});
    fmt::print("saved {}\n", options.save);
  }
  if (!options.plot.empty()) {
    if (options.metrics.empty()) {
      fmt::print("--plot needs --metrics PATH.csv (the plot is drawn from it)\n");
    } else {
      write_plot(options.metrics, options.plot,
                 fmt::format("tiny GPT on fortunes: {} layers, {} heads, {} embd, block {}",
                             options.n_layer, options.n_head, options.n_embd, options.block_size),
                 bigram_val);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "Train a character GPT (nanoGPT's) on the fortunes text with tapegrad, or sample a saved "
      "one."};
  app.add_option("--data-dir", options.data_dir, "folder of fortune files (.dat/.u8 skipped)")
      ->capture_default_str();
  app.add_option("--n-layer", options.n_layer, "transformer blocks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--n-head", options.n_head, "attention heads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--n-embd", options.n_embd, "features per position (a multiple of n-head)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--block-size", options.block_size, "context length in characters")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", options.batch_size, "windows per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-iters", options.max_iters, "training steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup-iters", options.warmup_iters, "steps of linear warm-up")
      ->capture_default_str();
  app.add_option("--eval-interval", options.eval_interval, "steps between loss estimates")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--eval-iters", options.eval_iters, "batches per loss estimate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", options.lr, "peak learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--min-lr", options.min_lr, "learning rate at the end of the cosine")
      ->capture_default_str();
  app.add_option("--weight-decay", options.weight_decay, "AdamW weight decay (matrices only)")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "seed for initialisation, batches and sampling")
      ->capture_default_str();
  app.add_option("--limit", options.limit, "use only the first N characters (0: all); quick runs")
      ->capture_default_str();
  app.add_option("--tokens", options.tokens, "characters to sample")->capture_default_str();
  app.add_option("--temperature", options.temperature, "sampling temperature")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--top-k", options.top_k, "sample among the k likeliest characters (0: all)")
      ->capture_default_str();
  app.add_option("--prompt", options.prompt, "text the sample starts from");
  app.add_option("--save", options.save, "write the trained model (safetensors)");
  app.add_option("--load", options.load, "sample from a saved model instead of training");
  app.add_option("--metrics", options.metrics, "write the loss estimates (CSV)");
  app.add_option("--plot", options.plot, "draw the losses with gnuplot (PNG; needs --metrics)");
  CLI11_PARSE(app, argc, argv);
  try {
    return options.load.empty() ? train(options) : sample_saved(options);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tiny_gpt: {}\n", e.what());
    return 1;
  }
}
