// Trains an MLP or a CNN on Fashion-MNIST from the command line, keeps the model as safetensors,
// and can reload it to evaluate. `fashion_mnist --help` lists the options; the defaults train
// 784-256-128-10 with ReLU and Adam and reach about 0.89-0.90 test accuracy; `--model cnn` trains
// two 5x5 convolutions with max pooling and two Linear layers (see make_cnn).
//
//   fashion_mnist --save model.safetensors --metrics ce.csv --plot ce.png
//   fashion_mnist --model cnn --save cnn.safetensors
//   fashion_mnist --load model.safetensors
//   fashion_mnist --loss mse --metrics mse.csv     (softmax + MSE: the seed's claim on real data)
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <tapegrad/io/dataset.hpp>
#include <tapegrad/io/safetensors.hpp>
#include <tapegrad/tapegrad.hpp>

#include <fmt/core.h>

#include "training_display.hpp"

using namespace tapegrad;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int epochs = 15;
  std::size_t batch_size = 64;
  double lr = 1e-3;
  std::vector<std::int64_t> hidden = {256, 128};  // mlp only
  std::string model = "mlp";                      // mlp or cnn
  double dropout = 0.25;                          // cnn only: before the last Linear
  bool batch_norm = false;                        // cnn only: BatchNorm2d after each conv
  std::string optimizer = "adam";
  std::string loss = "ce";
  std::uint64_t seed = 42;
  std::size_t train_limit = 0;  // 0: all 60000 training images
  std::size_t test_limit = 0;   // 0: all 10000 test images
  std::string save, load, metrics, plot;
  bool dry_run = false;
};

std::string join_sizes(const std::vector<std::int64_t>& sizes) {
  return fmt::format("{}", fmt::join(sizes, ","));
}

// "256,128" -> {256, 128}; anything else (an empty list or part, a sign, a letter, 0, a size
// beyond 2^20) is an error message.
std::optional<std::string> parse_sizes(const std::string& text, std::vector<std::int64_t>& sizes) {
  sizes.clear();
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ',');) {
    const bool digits = !part.empty() && part.size() <= 7 &&
                        part.find_first_not_of("0123456789") == std::string::npos;
    const std::int64_t size = digits ? std::stoll(part) : 0;
    if (size < 1 || size > (1 << 20)) {
      return fmt::format("'{}' is not a layer size (a positive integer up to 1048576)", part);
    }
    sizes.push_back(size);
  }
  if (sizes.empty() || text.ends_with(',')) {
    return "give the hidden layer sizes, comma separated (e.g. 256,128)";
  }
  return std::nullopt;
}

// Validators that say what they expect (CLI11's PositiveNumber prints the whole double range, and
// an unsigned option would silently wrap "-1" around).
CLI::Validator whole_number(std::int64_t low, std::int64_t high) {
  return {[low, high](std::string& text) -> std::string {
            std::int64_t value = 0;
            const char* end = text.data() + text.size();
            const auto [last, error] = std::from_chars(text.data(), end, value);
            const bool whole =
                !text.empty() && text[0] != '-' && error == std::errc() && last == end;
            if (whole && value >= low && value <= high) return {};
            return fmt::format("'{}' is not a whole number from {} to {}", text, low, high);
          },
          fmt::format("INT in [{}, {}]", low, high)};
}

CLI::Validator positive_finite() {
  return {[](std::string& text) -> std::string {
            char* end = nullptr;
            const double value = std::strtod(text.c_str(), &end);
            if (!text.empty() && *end == '\0' && std::isfinite(value) && value > 0) return {};
            return fmt::format("'{}' is not a positive finite number", text);
          },
          "POSITIVE"};
}

// Why `path` cannot be written, or nothing if it can. It is tried for real: an existing file is
// opened for writing (not truncated), a missing one is created and removed again, so a missing
// directory, a permission or a read-only file system shows up now, not after training.
std::optional<std::string> unwritable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path file(path);
  if (fs::is_directory(file, error)) return "it is a directory";
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  if (!fs::exists(dir, error)) return fmt::format("the directory {} does not exist", dir.string());
  if (!fs::is_directory(dir, error)) return fmt::format("{} is not a directory", dir.string());
  const bool existed = fs::exists(file, error);
  const int fd = ::open(path.c_str(), existed ? O_WRONLY : O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return fmt::format("cannot write it ({})", std::strerror(errno));
  ::close(fd);
  if (!existed) fs::remove(file, error);
  return std::nullopt;
}

// Every check on the options, run before any data is read or any file is written: one message
// per problem. A new option adds its check here.
std::vector<std::string> validate(Options& options, const std::string& hidden) {
  std::vector<std::string> problems;
  const auto problem = [&](const std::string& option, const std::string& value,
                           const std::string& what) {
    problems.push_back(fmt::format("{} {}: {}", option, value, what));
  };
  if (auto bad = parse_sizes(hidden, options.hidden)) problem("--hidden", hidden, *bad);
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(options.data_dir, error)) {
    problem("--data-dir", options.data_dir,
            fs::exists(options.data_dir, error)
                ? "not a directory"
                : "no such directory (Debian: apt-get install dataset-fashion-mnist)");
  }
  if (!options.load.empty()) {
    std::ifstream file(options.load, std::ios::binary);
    if (fs::is_directory(options.load, error) || !file) {
      problem("--load", options.load,
              fs::exists(options.load, error) ? "cannot be read" : "no such file");
    }
  }
  for (const auto& [option, path] :
       {std::pair{"--save", options.save}, std::pair{"--metrics", options.metrics},
        std::pair{"--plot", options.plot}}) {
    if (path.empty()) continue;
    if (auto bad = unwritable(path)) problem(option, path, *bad);
  }
  if (!options.plot.empty()) {
    if (options.metrics.empty()) {
      problem("--plot", options.plot, "needs --metrics PATH.csv (the plot is drawn from it)");
    }
    std::string extension = fs::path(options.plot).extension().string();
    for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (extension != ".png") problem("--plot", options.plot, "the plot is a PNG: name it *.png");
  }
  const auto same = [](const std::string& a, const std::string& b) {
    std::error_code ignored;
    return !a.empty() && !b.empty() &&
           fs::absolute(a, ignored).lexically_normal() ==
               fs::absolute(b, ignored).lexically_normal();
  };
  if (same(options.save, options.metrics)) problem("--save", options.save, "is also --metrics");
  if (same(options.save, options.plot)) problem("--save", options.save, "is also --plot");
  if (same(options.metrics, options.plot)) {
    problem("--metrics", options.metrics, "is also --plot");
  }
  return problems;
}

std::shared_ptr<nn::Sequential> make_mlp(const std::vector<std::int64_t>& hidden,
                                         Generator& generator) {
  std::vector<std::int64_t> sizes = {784};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(10);
  return nn::MLP(sizes, nn::Activation::relu, generator);
}

// The CNN of issue 14, as PyTorch's nn.Sequential with the same indices:
//   Conv2d(1, 16, 5, padding 2) [BatchNorm2d(16)] ReLU MaxPool2d(2)      [N, 1, 28, 28] -> 16x14x14
//   Conv2d(16, 32, 5, padding 2) [BatchNorm2d(32)] ReLU MaxPool2d(2)    -> [N, 32, 7, 7]
//   Flatten Linear(1568, 128) ReLU [Dropout(p)] Linear(128, 10)
// `layers` gets the same list in words, for the checkpoint's metadata (PyTorch rebuilds it).
std::shared_ptr<nn::Sequential> make_cnn(double dropout, bool batch_norm, Generator& generator,
                                         std::string* layers = nullptr) {
  auto model = std::make_shared<nn::Sequential>();
  std::vector<std::string> words;
  const auto add = [&](std::shared_ptr<nn::Module> m, std::string word) {
    model->add(std::move(m));
    words.push_back(std::move(word));
  };
  for (const auto& [in, out] : {std::pair<std::int64_t, std::int64_t>{1, 16}, {16, 32}}) {
    add(std::make_shared<nn::Conv2d>(in, out, 5, Conv2dOptions{.padding = 2}, generator),
        fmt::format("conv2d {} {} 5 2", in, out));
    if (batch_norm) add(std::make_shared<nn::BatchNorm2d>(out), fmt::format("batchnorm2d {}", out));
    add(std::make_shared<nn::ReLU>(), "relu");
    add(std::make_shared<nn::MaxPool2d>(2), "maxpool2d 2");
  }
  add(std::make_shared<nn::Flatten>(), "flatten");
  add(std::make_shared<nn::Linear>(1568, 128, generator), "linear 1568 128");
  add(std::make_shared<nn::ReLU>(), "relu");
  if (dropout > 0)
    add(std::make_shared<nn::Dropout>(dropout, generator), fmt::format("dropout {}", dropout));
  add(std::make_shared<nn::Linear>(128, 10, generator), "linear 128 10");
  if (layers != nullptr) *layers = fmt::format("{}", fmt::join(words, ";"));
  return model;
}

std::shared_ptr<nn::Sequential> make_model(const Options& options, Generator& generator,
                                           std::string* layers = nullptr) {
  if (options.model == "cnn")
    return make_cnn(options.dropout, options.batch_norm, generator, layers);
  auto model = make_mlp(options.hidden, generator);
  if (layers != nullptr)
    *layers = fmt::format("mlp 784-{}-10 relu", fmt::join(options.hidden, "-"));
  return model;
}

// The images as the model wants them: flat [N, 784] rows for the MLP, [N, 1, 28, 28] for the CNN.
Tensor model_input(const Tensor& images, const std::string& model) {
  if (model != "cnn") return images;
  return reshape(images, {static_cast<std::int64_t>(images.shape()[0]), 1, 28, 28});
}

// What the run trains, in words: "784-256-128-10" or "cnn (dropout 0.25)".
std::string describe(const Options& options) {
  if (options.model != "cnn") return fmt::format("784-{}-10", fmt::join(options.hidden, "-"));
  return fmt::format("cnn conv5x5(16)-pool-conv5x5(32)-pool-128-10{}{}",
                     options.batch_norm ? ", batch norm" : "",
                     options.dropout > 0 ? fmt::format(", dropout {}", options.dropout) : "");
}

// The loss the user chose: cross-entropy from logits, or the seed's softmax + MSE pairing.
Tensor loss_of(const Tensor& logits, const Tensor& labels, const std::string& loss) {
  if (loss == "mse") return nn::mse(softmax(logits, -1), one_hot(labels, 10));
  return nn::cross_entropy_with_logits(logits, labels);
}

struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
};

// Accuracy and mean loss over a dataset, in batches, recording nothing.
Evaluation evaluate(nn::Module& model, const io::Dataset& data, const std::string& loss,
                    const std::string& kind) {
  NoGradGuard no_grad;
  model.eval();
  // A CNN's im2col buffers grow with the batch (1000 images would need ~0.6 GB): smaller batches.
  io::BatchLoader loader(data, kind == "cnn" ? 200 : 1000, 0, /*shuffle=*/false);
  Evaluation result;
  std::size_t correct = 0;
  while (auto batch = loader.next()) {
    const Tensor logits = model(model_input(batch->images, kind));
    result.loss +=
        loss_of(logits, batch->labels, loss).item() * static_cast<double>(batch->labels.numel());
    const auto z = logits.values();
    const auto y = batch->labels.values();
    for (std::size_t n = 0; n < y.size(); ++n) {
      const double* row = z.data() + n * 10;
      const auto predicted = std::max_element(row, row + 10) - row;
      correct += static_cast<double>(predicted) == y[n];
    }
  }
  model.train();
  result.loss /= static_cast<double>(data.size());
  result.accuracy = static_cast<double>(correct) / static_cast<double>(data.size());
  return result;
}

// The test images (normalised as the training ones), or the first --test-limit of them: the
// interop tests compare accuracies on a subset to stay quick.
io::Dataset load_test_set(const Options& options) {
  io::Dataset test = io::load_fashion_mnist(options.data_dir, io::Split::Test,
                                            io::kFashionMnistMean, io::kFashionMnistStd);
  if (options.test_limit > 0) test = test.subset(std::min(options.test_limit, test.size()));
  return test;
}

int evaluate_saved(const Options& options) {
  const io::SafetensorsFile file = io::read_safetensors(options.load);
  Options saved = options;  // the architecture comes from the checkpoint's metadata
  const auto meta = [&](const char* key) -> const std::string* {
    auto it = file.metadata.find(key);
    return it == file.metadata.end() ? nullptr : &it->second;
  };
  if (const auto* model = meta("model")) saved.model = *model;
  if (const auto* hidden = meta("hidden")) {
    if (auto bad = parse_sizes(*hidden, saved.hidden)) {
      throw std::runtime_error(fmt::format("{}: metadata 'hidden': {}", options.load, *bad));
    }
  }
  if (const auto* dropout = meta("dropout")) saved.dropout = std::stod(*dropout);
  if (const auto* batch_norm = meta("batch_norm")) saved.batch_norm = *batch_norm == "1";
  if (const auto* loss = meta("loss")) saved.loss = *loss;
  Generator generator(options.seed);
  auto model = make_model(saved, generator);
  io::NamedTensors state = model->named_state();  // parameters and batch norm's buffers
  io::load_into(options.load, state);
  const std::string hidden_words = describe(saved);
  const std::string& loss = saved.loss;
  if (options.dry_run) {
    fmt::print("--dry-run: {} loads into {}; stopping before the evaluation\n", options.load,
               hidden_words);
    return 0;
  }
  const io::Dataset test = load_test_set(options);
  const Evaluation result = evaluate(*model, test, loss, saved.model);
  fmt::print("loaded {} ({}), test loss {:.4f} test accuracy {:.4f}\n", options.load, hidden_words,
             result.loss, result.accuracy);
  return 0;
}

int train(const Options& options) {
  io::Dataset train = io::load_fashion_mnist(options.data_dir, io::Split::Train,
                                             io::kFashionMnistMean, io::kFashionMnistStd);
  if (options.train_limit > 0) train = train.subset(std::min(options.train_limit, train.size()));
  const io::Dataset test = load_test_set(options);
  Generator generator(options.seed);
  std::string layers;
  auto model = make_model(options, generator, &layers);
  std::unique_ptr<nn::Optimizer> optimizer;
  if (options.optimizer == "sgd") {
    optimizer = std::make_unique<nn::SGD>(model->parameters(),
                                          nn::SGDOptions{.lr = options.lr, .momentum = 0.9});
  } else {
    optimizer = std::make_unique<nn::Adam>(model->parameters(), nn::AdamOptions{.lr = options.lr});
  }
  // Cosine decay to zero over the run: the last epochs fine-tune instead of bouncing around.
  nn::CosineAnnealingLR schedule(*optimizer, options.epochs, 0.0);
  io::BatchLoader loader(train, options.batch_size, options.seed);
  const bool terminal = display::stdout_is_terminal();
  fmt::print("training {} ({}, {} loss) on {} images, batch {}, {} epochs\n", describe(options),
             options.optimizer, options.loss, train.size(), options.batch_size, options.epochs);
  if (options.dry_run) {
    fmt::print("--dry-run: the options and the data are fine; stopping before training\n");
    return 0;
  }
  std::ofstream metrics;
  if (!options.metrics.empty()) {
    metrics.open(options.metrics);
    metrics << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n";
  }
  const auto run_start = Clock::now();
  Evaluation last_test;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    double loss_sum = 0.0;
    std::size_t correct = 0, seen = 0, done = 0;
    const std::size_t total = loader.batches_per_epoch();
    while (auto batch = loader.next()) {
      Tape tape;  // one tape per step: everything it recorded is freed at the end of the step
      const Tensor logits = (*model)(model_input(batch->images, options.model));
      const Tensor loss = loss_of(logits, batch->labels, options.loss);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      const std::size_t batch_size = batch->labels.numel();
      loss_sum += loss.item() * static_cast<double>(batch_size);
      const auto z = logits.values();
      const auto y = batch->labels.values();
      for (std::size_t n = 0; n < batch_size; ++n) {
        const double* row = z.data() + n * 10;
        correct += static_cast<double>(std::max_element(row, row + 10) - row) == y[n];
      }
      seen += batch_size;
      ++done;
      if (terminal && (done % 20 == 0 || done == total)) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - epoch_start).count();
        display::draw_progress(
            fmt::format("epoch {:>2}", epoch), done, total,
            fmt::format("loss {:.4f} {:.0f} ex/s ETA {:.0f}s", loss_sum / static_cast<double>(seen),
                        static_cast<double>(seen) / elapsed,
                        elapsed / static_cast<double>(done) * static_cast<double>(total - done)));
      }
    }
    schedule.step();
    const double train_loss = loss_sum / static_cast<double>(seen);
    const double train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
    last_test = evaluate(*model, test, options.loss, options.model);
    const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    if (terminal) display::clear_progress();
    fmt::print(
        "epoch {:>2}/{} {:.1f}s train loss {:.4f} train accuracy {:.4f} test loss {:.4f} "
        "test accuracy {:.4f}\n",
        epoch, options.epochs, seconds, train_loss, train_accuracy, last_test.loss,
        last_test.accuracy);
    std::fflush(stdout);
    if (metrics.is_open()) {
      metrics << fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f}\n", epoch, train_loss,
                             train_accuracy, last_test.loss, last_test.accuracy, seconds);
      metrics.flush();
    }
  }
  fmt::print("done in {:.1f}s\n", std::chrono::duration<double>(Clock::now() - run_start).count());
  if (!options.save.empty()) {
    io::save_safetensors(options.save, model->named_state(),
                         {{"architecture", layers},
                          {"model", options.model},
                          {"hidden", join_sizes(options.hidden)},
                          {"dropout", fmt::format("{}", options.dropout)},
                          {"batch_norm", options.batch_norm ? "1" : "0"},
                          {"loss", options.loss},
                          {"epochs", std::to_string(options.epochs)},
                          {"test_accuracy", fmt::format("{:.4f}", last_test.accuracy)}});
    fmt::print("saved {}\n", options.save);
  }
  if (!options.plot.empty()) {
    {  // validate() made sure --metrics was given
      display::write_plot(
          options.metrics, options.plot,
          {.title = fmt::format("Fashion-MNIST {}, {} loss", describe(options), options.loss),
           .xlabel = "epoch",
           .ylabel = "accuracy",
           .y2label = "train loss"},
          {{.x = 1, .y = 5, .title = "test accuracy"},
           {.x = 1, .y = 3, .title = "train accuracy"},
           {.x = 1, .y = 2, .title = "train loss", .style = "lines", .right_axis = true}});
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"Train an MLP or a CNN on Fashion-MNIST with tapegrad, or evaluate a saved one."};
  std::string hidden = join_sizes(options.hidden);
  app.add_option("--data-dir", options.data_dir, "folder with the four IDX .gz files")
      ->capture_default_str();
  app.add_option("--epochs", options.epochs, "passes over the training set")
      ->capture_default_str()
      ->check(whole_number(1, 100000));
  app.add_option("--batch-size", options.batch_size, "examples per step")
      ->capture_default_str()
      ->check(whole_number(1, 60000));
  app.add_option("--lr", options.lr, "initial learning rate (cosine decay to 0)")
      ->capture_default_str()
      ->check(positive_finite());
  app.add_option("--model", options.model, "mlp (784-hidden-10) or cnn (two 5x5 convolutions)")
      ->capture_default_str()
      ->check(CLI::IsMember({"mlp", "cnn"}));
  app.add_option("--hidden", hidden, "mlp: hidden layer sizes, comma separated")
      ->capture_default_str();
  app.add_option("--dropout", options.dropout, "cnn: dropout before the last Linear (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.95));
  app.add_flag("--batch-norm", options.batch_norm, "cnn: BatchNorm2d after each convolution");
  app.add_option("--optimizer", options.optimizer, "adam or sgd (momentum 0.9)")
      ->capture_default_str()
      ->check(CLI::IsMember({"adam", "sgd"}));
  app.add_option("--loss", options.loss, "ce (cross-entropy from logits) or mse (softmax + MSE)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ce", "mse"}));
  app.add_option("--seed", options.seed, "seed for initialisation and shuffling")
      ->capture_default_str()
      ->check(whole_number(0, std::numeric_limits<std::int64_t>::max()));
  app.add_option("--train-limit", options.train_limit,
                 "train on the first N images only (0: all); for quick runs and tests")
      ->capture_default_str()
      ->check(whole_number(0, 60000));
  app.add_option("--test-limit", options.test_limit,
                 "evaluate on the first N test images only (0: all); for quick runs and tests")
      ->capture_default_str()
      ->check(whole_number(0, 10000));
  auto* save = app.add_option("--save", options.save, "write the trained model (safetensors)");
  auto* metrics = app.add_option("--metrics", options.metrics, "write per-epoch metrics (CSV)");
  auto* plot = app.add_option("--plot", options.plot,
                              "draw the metrics with gnuplot (PNG; needs --metrics)");
  app.add_option("--load", options.load, "evaluate a saved model instead of training")
      ->excludes(save)
      ->excludes(metrics)
      ->excludes(plot)
      ->excludes("--epochs")
      ->excludes("--batch-size")
      ->excludes("--lr")
      ->excludes("--optimizer")
      ->excludes("--train-limit");
  app.add_flag("--dry-run", options.dry_run,
               "check the options and load the data, print what would be trained, then stop");
  CLI11_PARSE(app, argc, argv);
  // Everything is checked before any data is read or any file written: a mistake costs nothing.
  auto problems = validate(options, hidden);
  if (options.model != "cnn" && (app.count("--dropout") > 0 || options.batch_norm)) {
    problems.push_back("--dropout and --batch-norm apply to --model cnn only");
  }
  if (options.model == "cnn" && app.count("--hidden") > 0) {
    problems.push_back("--hidden applies to --model mlp only (the CNN's sizes are fixed)");
  }
  if (!problems.empty()) {
    for (const auto& problem : problems) fmt::print(stderr, "fashion_mnist: {}\n", problem);
    fmt::print(stderr, "Run with --help for the options.\n");
    return 2;
  }
  if (!options.plot.empty() && !display::have_gnuplot()) {
    fmt::print(
        "note: gnuplot is not installed (apt-get install gnuplot-nox): --plot will write "
        "the script {}.gp instead of the PNG\n",
        options.plot);
  }
  try {
    return options.load.empty() ? train(options) : evaluate_saved(options);
  } catch (const std::exception& e) {
    fmt::print(stderr, "fashion_mnist: {}\n", e.what());
    return 1;
  }
}
