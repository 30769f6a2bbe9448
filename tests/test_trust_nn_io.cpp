// Issue 12, nn/ and io/: regressions for each finding, named after what they guard.
//   - a module used twice lists its parameters once, and optimizers refuse a tensor twice;
//   - an optimizer step never writes a non-finite value, and changes nothing when it refuses;
//   - every optimizer and schedule option rejects non-finite and out-of-range values;
//   - Dataset::from_idx on zero images with huge sample dimensions (checked arithmetic);
//   - messages: truncated safetensors, a PyTorch .pt file, a Fashion-MNIST directory without
//     the files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/dataset.hpp"
#include "tapegrad/io/error.hpp"
#include "tapegrad/io/safetensors.hpp"
#include "tapegrad/nn/layers.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Passes when `f` throws an `E` whose what() contains every fragment.
template <class E>
::testing::AssertionResult ThrowsWith(const std::function<void()>& f,
                                      const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& fragment : fragments) {
      if (what.find(fragment) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message \"" << what << "\" does not contain \"" << fragment << "\"";
      }
    }
    if (std::getenv("TAPEGRAD_SHOW_MESSAGES") != nullptr) fmt::print("  {}\n", what);
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << "threw another exception (" << typeid(e).name() << "): " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

#define EXPECT_THROWS_WITH(statement, ErrorType, ...)                           \
  EXPECT_TRUE(ThrowsWith<ErrorType>([&] { (void)(statement); }, {__VA_ARGS__})) \
      << "statement: " #statement

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tapegrad-trust-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const Bytes& bytes) const {
    const fs::path file = path_ / name;
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return file;
  }

 private:
  fs::path path_;
};

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An IDX file: magic 00 00 type ndims, big-endian uint32 dims, then the payload.
Bytes idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes bytes = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (const std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back((d >> shift) & 0xff);
  }
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

std::vector<double> values_of(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
}

// Bitwise equality, so that NaN != anything and -0 != 0 count as changes.
void expect_bitwise_equal(const std::vector<double>& actual, const std::vector<double>& expected,
                          const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(actual[i]), std::bit_cast<std::uint64_t>(expected[i]))
        << what << " element " << i << ": " << actual[i] << " vs " << expected[i];
  }
}

// Runs `script` with /usr/bin/python3 and returns its standard output; empty when python3 or
// torch is missing (the caller skips).
std::string run_python(const std::string& script, const TempDir& dir) {
  const fs::path file = dir.path() / "script.py";
  {
    std::ofstream out(file);
    out << script;
  }
  const std::string command = fmt::format("/usr/bin/python3 '{}' 2>&1", file.string());
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (::pclose(pipe) != 0) return "FAILED: " + output;
  return output;
}

bool torch_available() {
  static const bool available =
      std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return available;
}

// The source tree this test binary was built from: CMakeCache.txt's CMAKE_HOME_DIRECTORY, found
// from the binary's own location (so no absolute path is compiled in).
fs::path source_dir() {
  std::error_code error;
  for (fs::path dir = fs::read_symlink("/proc/self/exe", error).parent_path(); !dir.empty();
       dir = dir.parent_path()) {
    std::ifstream cache(dir / "CMakeCache.txt");
    for (std::string line; std::getline(cache, line);) {
      const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
      if (line.starts_with(key)) return line.substr(key.size());
    }
    if (dir == dir.root_path()) break;
  }
  return {};
}

std::string python_list(std::span<const double> values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    text += fmt::format("{}{:.17g}", i == 0 ? "" : ", ", values[i]);
  }
  return text + "]";
}

// ---------------------------------------------------------------------------------------------
// Item 2: a module used twice.

// A module that registers one tensor under two names (a tied weight done by hand).
class TiedPair : public nn::Module {
 public:
  TiedPair() {
    Tensor w = tapegrad::tensor({1.0, 2.0});
    register_parameter("first", w);
    register_parameter("second", w);
    register_parameter("other", tapegrad::tensor({3.0}));
  }
  Tensor forward(const Tensor& x) override { return x; }
};

std::vector<std::string> names_of(const nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& [name, parameter] : module.named_parameters()) names.push_back(name);
  return names;
}

TEST(SharedParameters, SequentialOfOneLayerTwiceListsEachParameterOnce) {
  Generator generator(1);
  auto lin = std::make_shared<nn::Linear>(3, 3, generator);
  nn::Sequential twice({lin, std::make_shared<nn::ReLU>(), lin});
  // First name wins, as torch.nn.Module.named_parameters(remove_duplicate=True).
  EXPECT_EQ(names_of(twice), (std::vector<std::string>{"0.weight", "0.bias"}));
  const std::vector<Tensor> parameters = twice.parameters();
  ASSERT_EQ(parameters.size(), 2u);
  EXPECT_TRUE(parameters[0].same(lin->parameter("weight")));
  EXPECT_TRUE(parameters[1].same(lin->parameter("bias")));
  // Each name still reaches its tensor.
  EXPECT_TRUE(twice.parameter("2.weight").same(lin->parameter("weight")));

  TiedPair tied;
  EXPECT_EQ(names_of(tied), (std::vector<std::string>{"first", "other"}));
  EXPECT_EQ(tied.parameters().size(), 2u);
}

TEST(Misuse, OptimizerGivenTheSameTensorTwice) {
  const Tensor w = zeros(Shape{2, 2}).requires_grad_();
  const Tensor b = zeros(Shape{2}).requires_grad_();
  EXPECT_THROWS_WITH(nn::SGD({w, b, w}), ValueError, "SGD", "parameter 2", "same tensor",
                     "parameter 0", "[2, 2]");
  EXPECT_THROWS_WITH(nn::Adam({b, b}), ValueError, "Adam", "parameter 1", "same tensor");
  EXPECT_THROWS_WITH(nn::AdamW({w, b, b}), ValueError, "AdamW", "parameter 2", "same tensor");
}

// The whole point of item 2: a shared layer trained by SGD with momentum and by Adam takes the
// steps PyTorch takes (each parameter updated once per step, with the gradient summed over both
// uses).
TEST(TorchParity, SharedLayerTrainedBySgdAndAdamMatchesPyTorch) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  // Linear(3 -> 3) used twice: y = lin(tanh(lin(x))), loss = sum(y^2) / 2.
  Generator generator(5);
  const Tensor x = tapegrad::tensor({{0.5, -1.0, 2.0}, {1.5, 0.25, -0.75}});
  struct Run {
    std::string name;
    std::string torch_optimizer;
    std::function<std::unique_ptr<nn::Optimizer>(std::vector<Tensor>)> make;
  };
  const std::vector<Run> runs = {
      {"sgd", "torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::SGD>(std::move(p), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
       }},
      {"adam", "torch.optim.Adam(model.parameters(), lr=0.01)",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::Adam>(std::move(p), nn::AdamOptions{.lr = 0.01});
       }},
  };
  for (const Run& run : runs) {
    auto lin = std::make_shared<nn::Linear>(3, 3, generator);
    auto model = std::make_shared<nn::Sequential>(
        std::vector<std::shared_ptr<nn::Module>>{lin, std::make_shared<nn::Tanh>(), lin});
    const std::vector<double> weight0 = values_of(lin->parameter("weight"));
    const std::vector<double> bias0 = values_of(lin->parameter("bias"));
    std::unique_ptr<nn::Optimizer> optimizer = run.make(model->parameters());
    for (int step = 0; step < 3; ++step) {
      Tape tape;
      optimizer->zero_grad();
      (sum(square((*model)(x))) * 0.5).backward();
      optimizer->step();
    }
    TempDir dir;
    const std::string script = fmt::format(
        R"(import torch
torch.set_default_dtype(torch.float64)
lin = torch.nn.Linear(3, 3)
with torch.no_grad():
    lin.weight.copy_(torch.tensor({}).reshape(3, 3))
    lin.bias.copy_(torch.tensor({}))
model = torch.nn.Sequential(lin, torch.nn.Tanh(), lin)
optimizer = {}
x = torch.tensor({}).reshape(2, 3)
for step in range(3):
    optimizer.zero_grad()
    (model(x).square().sum() * 0.5).backward()
    optimizer.step()
print(" ".join(repr(v) for v in lin.weight.detach().flatten().tolist() + lin.bias.detach().tolist()))
)",
        python_list(weight0), python_list(bias0), run.torch_optimizer, python_list(x.values()));
    const std::string output = run_python(script, dir);
    ASSERT_FALSE(output.empty() || output.starts_with("FAILED")) << output;
    std::istringstream in(output);
    std::vector<double> expected;
    for (double v = 0; in >> v;) expected.push_back(v);
    std::vector<double> actual = values_of(lin->parameter("weight"));
    const std::vector<double> bias = values_of(lin->parameter("bias"));
    actual.insert(actual.end(), bias.begin(), bias.end());
    ASSERT_EQ(actual.size(), expected.size()) << run.name << ": " << output;
    double worst = 0.0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
      worst =
          std::max(worst, std::abs(actual[i] - expected[i]) / std::max(1.0, std::abs(expected[i])));
    }
    EXPECT_LE(worst, 1e-12) << run.name;
    fmt::print("  {} on a shared Linear, 3 steps: worst error vs PyTorch {:.3g}\n", run.name,
               worst);
  }
}

// ---------------------------------------------------------------------------------------------
// Optimizer step: never a non-finite parameter; on refusal nothing changes.

// Two parameters: a [2, 2] with a finite gradient, b [3] whose gradient `gb` is given.
struct TwoParameters {
  Tensor a = tapegrad::tensor({{0.5, -1.0}, {2.0, 0.25}}).requires_grad_();
  Tensor b = tapegrad::tensor({1.0, -0.5, 3.0}).requires_grad_();
  void set_grads(std::vector<double> gb) {
    a.set_grad(tapegrad::tensor({{0.1, -0.2}, {0.3, 0.4}}));
    b.set_grad(Tensor::from_values(std::move(gb), Shape{3}));
  }
  std::vector<Tensor> list() const { return {a, b}; }
};

using MakeOptimizer = std::function<std::unique_ptr<nn::Optimizer>(std::vector<Tensor>)>;

struct OptimizerCase {
  std::string name;
  MakeOptimizer make;
};

std::vector<OptimizerCase> optimizer_cases() {
  return {
      {"SGD",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::SGD>(std::move(p), nn::SGDOptions{.lr = 0.1});
       }},
      {"SGD",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::SGD>(
             std::move(p),
             nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"SGD",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::SGD>(
             std::move(p), nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
       }},
      {"Adam",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::Adam>(std::move(p), nn::AdamOptions{.lr = 0.01});
       }},
      {"Adam",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::Adam>(std::move(p),
                                           nn::AdamOptions{.lr = 0.01, .weight_decay = 0.1});
       }},
      {"AdamW",
       [](std::vector<Tensor> p) {
         return std::make_unique<nn::AdamW>(std::move(p), nn::AdamWOptions{.lr = 0.01});
       }},
  };
}

// For each optimizer: a good step, a step whose gradient holds NaN (refused, nothing changes),
// and another good step must land exactly where two good steps land, so the refused step left
// the moments, momentum buffers and step counts as they were.
TEST(Misuse, OptimizerStepWithANaNGradientChangesNothing) {
  for (const OptimizerCase& c : optimizer_cases()) {
    SCOPED_TRACE(c.name);
    TwoParameters tested;
    TwoParameters reference;
    auto optimizer = c.make(tested.list());
    auto reference_optimizer = c.make(reference.list());
    const std::vector<double> good = {0.5, -0.25, 1.0};

    tested.set_grads(good);
    optimizer->step();
    reference.set_grads(good);
    reference_optimizer->step();

    const std::vector<double> a_before = values_of(tested.a);
    const std::vector<double> b_before = values_of(tested.b);
    tested.set_grads({0.5, kNaN, 1.0});
    EXPECT_THROWS_WITH(optimizer->step(), ValueError, c.name, "parameter 1", "[3]", "nan",
                       "index 1", "unchanged");
    // a comes first and has a finite gradient: it must not have moved either.
    expect_bitwise_equal(values_of(tested.a), a_before, "a after the refused step");
    expect_bitwise_equal(values_of(tested.b), b_before, "b after the refused step");

    tested.set_grads(good);
    optimizer->step();
    reference.set_grads(good);
    reference_optimizer->step();
    expect_bitwise_equal(values_of(tested.a), values_of(reference.a), "a after the next step");
    expect_bitwise_equal(values_of(tested.b), values_of(reference.b), "b after the next step");
  }
}

TEST(Misuse, OptimizerStepWhoseUpdateOverflowsChangesNothing) {
  // Finite gradients, but lr * g overflows to inf.
  Tensor w = tapegrad::tensor({1.0, 2.0}).requires_grad_();
  nn::SGD sgd({w}, {.lr = 1e300});
  w.set_grad(tapegrad::tensor({1.0, 1e10}));
  EXPECT_THROWS_WITH(sgd.step(), ValueError, "SGD", "parameter 0", "[2]", "-inf", "index 1");
  expect_bitwise_equal(values_of(w), {1.0, 2.0}, "w");
  // Adam with eps = 0 (allowed, as in PyTorch) and a zero gradient divides 0 by 0.
  Tensor v = tapegrad::tensor({1.0, 2.0}).requires_grad_();
  nn::Adam adam({v}, {.eps = 0.0});
  v.set_grad(tapegrad::tensor({0.5, 0.0}));
  EXPECT_THROWS_WITH(adam.step(), ValueError, "Adam", "parameter 0", "nan", "index 1");
  expect_bitwise_equal(values_of(v), {1.0, 2.0}, "v");
  // An infinite gradient.
  v.set_grad(tapegrad::tensor({-kInf, 0.5}));
  nn::AdamW adamw({v});
  EXPECT_THROWS_WITH(adamw.step(), ValueError, "AdamW", "parameter 0", "index 0", "-inf");
  expect_bitwise_equal(values_of(v), {1.0, 2.0}, "v");
}

TEST(Misuse, OptimizerOptionsRejectNonFiniteAndOutOfRangeValues) {
  const std::vector<Tensor> p = {zeros(Shape{2}).requires_grad_()};
  struct Case {
    std::function<void()> make;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {[&] { nn::SGD(p, {.lr = kInf}); }, {"SGD", "learning rate", "inf"}},
      {[&] { nn::SGD(p, {.lr = kNaN}); }, {"SGD", "learning rate", "nan"}},
      {[&] { nn::SGD(p, {.momentum = kInf}); }, {"SGD", "momentum", "inf"}},
      {[&] { nn::SGD(p, {.momentum = kNaN}); }, {"SGD", "momentum", "nan"}},
      {[&] { nn::SGD(p, {.momentum = 0.9, .dampening = kInf}); }, {"SGD", "dampening", "inf"}},
      {[&] { nn::SGD(p, {.momentum = 0.9, .dampening = kNaN}); }, {"SGD", "dampening", "nan"}},
      {[&] { nn::SGD(p, {.momentum = 0.9, .dampening = 1.5}); }, {"SGD", "dampening", "1.5"}},
      {[&] { nn::SGD(p, {.weight_decay = kInf}); }, {"SGD", "weight_decay", "inf"}},
      {[&] { nn::SGD(p, {.weight_decay = kNaN}); }, {"SGD", "weight_decay", "nan"}},
      {[&] { nn::Adam(p, {.lr = kInf}); }, {"Adam", "learning rate", "inf"}},
      {[&] { nn::Adam(p, {.beta1 = kNaN}); }, {"Adam", "beta1", "nan"}},
      {[&] { nn::Adam(p, {.beta2 = kNaN}); }, {"Adam", "beta2", "nan"}},
      {[&] { nn::Adam(p, {.beta2 = kInf}); }, {"Adam", "beta2", "inf"}},
      {[&] { nn::Adam(p, {.eps = kInf}); }, {"Adam", "eps", "inf"}},
      {[&] { nn::Adam(p, {.eps = kNaN}); }, {"Adam", "eps", "nan"}},
      {[&] { nn::Adam(p, {.weight_decay = kInf}); }, {"Adam", "weight_decay", "inf"}},
      {[&] { nn::Adam(p, {.weight_decay = kNaN}); }, {"Adam", "weight_decay", "nan"}},
      {[&] { nn::AdamW(p, {.lr = kInf}); }, {"AdamW", "learning rate", "inf"}},
      {[&] { nn::AdamW(p, {.beta1 = -kInf}); }, {"AdamW", "beta1", "-inf"}},
      {[&] { nn::AdamW(p, {.eps = kInf}); }, {"AdamW", "eps", "inf"}},
      {[&] { nn::AdamW(p, {.weight_decay = kInf}); }, {"AdamW", "weight_decay", "inf"}},
      {[&] { nn::AdamW(p, {.weight_decay = kNaN}); }, {"AdamW", "weight_decay", "nan"}},
      {[&] { nn::SGD(p).set_learning_rate(kInf); }, {"SGD", "learning rate", "inf"}},
      {[&] {
         nn::SGD sgd(p);
         nn::StepLR(sgd, 2, kInf);
       },
       {"StepLR", "gamma", "inf"}},
      {[&] {
         nn::SGD sgd(p);
         nn::StepLR(sgd, 2, kNaN);
       },
       {"StepLR", "gamma", "nan"}},
      {[&] {
         nn::SGD sgd(p);
         nn::CosineAnnealingLR(sgd, 10, kInf);
       },
       {"CosineAnnealingLR", "eta_min", "inf"}},
      {[&] {
         nn::SGD sgd(p);
         nn::CosineAnnealingLR(sgd, 10, kNaN);
       },
       {"CosineAnnealingLR", "eta_min", "nan"}},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_TRUE(ThrowsWith<ValueError>(cases[i].make, cases[i].fragments)) << "case " << i;
  }
  // The boundaries that are allowed stay allowed (PyTorch's ranges).
  EXPECT_NO_THROW(nn::SGD(p, {.lr = 0.0, .momentum = 0.0, .dampening = 1.0}));
  EXPECT_NO_THROW(nn::Adam(p, {.lr = 0.0, .beta1 = 0.0, .beta2 = 0.0, .eps = 0.0}));
}

// A schedule that would drive the learning rate to infinity is stopped at that step.
TEST(Misuse, ScheduleThatOverflowsTheLearningRate) {
  const Tensor w = zeros(Shape{2}).requires_grad_();
  nn::SGD sgd({w}, {.lr = 1e300});
  nn::StepLR schedule(sgd, 1, 1e10);
  EXPECT_THROWS_WITH(schedule.step(), ValueError, "SGD", "learning rate", "inf");
  EXPECT_EQ(sgd.learning_rate(), 1e300);
}

// ---------------------------------------------------------------------------------------------
// Item 10: Dataset::from_idx with zero images.

TEST(Misuse, IdxImagesOfZeroSamplesWhoseSampleSizeOverflows) {
  TempDir dir;
  // 0 images of 65536^4 = 2^64 pixels each: the file holds no pixels, but the sample size does
  // not fit in 64 bits (it used to wrap to 0 and give images [0, 0]).
  const fs::path images =
      dir.write("img.idx", idx_bytes(0x08, {0, 65536, 65536, 65536, 65536}, {}));
  const fs::path labels = dir.write("lbl.idx", idx_bytes(0x08, {0}, {}));
  EXPECT_THROWS_WITH(io::Dataset::from_idx(images, labels), io::FormatError, "Dataset::from_idx",
                     images.string(), "[0, 65536, 65536, 65536, 65536]", "overflow");
  // 2^32-1 * 2^32-1 * 2: overflows the signed 64-bit dimension though not every unsigned product.
  const fs::path signed_images =
      dir.write("img2.idx", idx_bytes(0x08, {0, 4294967295u, 4294967295u}, {}));
  EXPECT_THROWS_WITH(io::Dataset::from_idx(signed_images, labels), io::FormatError,
                     "Dataset::from_idx", "overflow");
}

TEST(EmptyDataset, FromIdxWithNoImagesKeepsTheSampleShape) {
  TempDir dir;
  const fs::path images = dir.write("img.idx", idx_bytes(0x08, {0, 28, 28}, {}));
  const fs::path labels = dir.write("lbl.idx", idx_bytes(0x08, {0}, {}));
  const io::Dataset data = io::Dataset::from_idx(images, labels);
  EXPECT_EQ(data.images().shape(), (Shape{0, 784}));
  EXPECT_EQ(data.labels().shape(), (Shape{0}));
  EXPECT_EQ(data.size(), 0u);
  EXPECT_EQ(data.features(), 784u);
  // The largest sample size that fits.
  const fs::path wide = dir.write("wide.idx", idx_bytes(0x08, {0, 4294967295u, 2147483648u}, {}));
  EXPECT_EQ(io::Dataset::from_idx(wide, labels).images().shape(),
            (Shape{0, std::int64_t{4294967295} * 2147483648}));
}

// ---------------------------------------------------------------------------------------------
// Messages.

io::NamedTensors small_model() {
  return {{"w", tapegrad::tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}})},
          {"b", tapegrad::tensor({7.0, 8.0, 9.0})}};
}

TEST(Misuse, TruncatedSafetensorsFileSaysTruncated) {
  TempDir dir;
  const fs::path path = dir.path() / "model.safetensors";
  io::save_safetensors(path, small_model());
  Bytes bytes = read_bytes(path);
  // Cut inside the data buffer (a download or copy that stopped early).
  bytes.resize(bytes.size() - 5);
  const fs::path cut = dir.write("cut.safetensors", bytes);
  io::NamedTensors params = small_model();
  EXPECT_THROWS_WITH(io::load_into(cut, params), io::FormatError, "load_into", cut.string(),
                     "truncated", "tensor 'w'", "5 bytes");
  EXPECT_THROWS_WITH(io::read_safetensors(cut), io::FormatError, "read_safetensors", "truncated");
  EXPECT_THROWS_WITH(io::read_safetensors_bytes(bytes, "mem"), io::FormatError, "truncated");
  // Cut inside the header.
  bytes.resize(20);
  EXPECT_THROWS_WITH(io::read_safetensors_bytes(bytes, "mem"), io::FormatError, "truncated");
  // Cut inside the 8-byte length.
  bytes.resize(5);
  EXPECT_THROWS_WITH(io::read_safetensors_bytes(bytes, "mem"), io::FormatError, "truncated");
}

// The start of a zip archive, as torch.save writes since PyTorch 1.6.
Bytes zip_start() {
  Bytes bytes = {'P', 'K', 3, 4, 0x14, 0, 0, 0, 8, 0};
  const std::string name = "archive/data.pkl";
  bytes.resize(64, 0);
  bytes.insert(bytes.end(), name.begin(), name.end());
  return bytes;
}

TEST(Misuse, PyTorchPtFileIsNamedAsSuch) {
  TempDir dir;
  const fs::path path = dir.write("model.pt", zip_start());
  io::NamedTensors params = small_model();
  for (const auto& check : std::vector<std::function<void()>>{
           [&] { io::read_safetensors(path); }, [&] { io::load_into(path, params); },
           [&] { io::read_safetensors_bytes(zip_start(), "model.pt"); }}) {
    EXPECT_TRUE(ThrowsWith<io::FormatError>(
        check, {"model.pt", "zip", "PyTorch", "torch.save", "safetensors", "state_dict"}));
  }
}

TEST(Misuse, RealTorchSaveFileIsNamedAsSuch) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  TempDir dir;
  const fs::path path = dir.path() / "real.pt";
  const std::string output =
      run_python(fmt::format("import torch\ntorch.save(torch.nn.Linear(3, 2).state_dict(), '{}')\n",
                             path.string()),
                 dir);
  ASSERT_FALSE(output.starts_with("FAILED")) << output;
  EXPECT_THROWS_WITH(io::read_safetensors(path), io::FormatError, "real.pt", "zip", "torch.save");
}

TEST(Misuse, FashionMnistDirectoryWithoutTheFilesGivesTheInstallHint) {
  TempDir dir;
  const std::vector<std::string> hint = {"load_fashion_mnist", "dataset-fashion-mnist",
                                         io::kFashionMnistDir};
  auto missing_dir = hint;
  missing_dir.push_back("not a directory");
  EXPECT_TRUE(ThrowsWith<io::FormatError>(
      [&] { io::load_fashion_mnist(dir.path() / "nope", io::Split::Train); }, missing_dir));
  auto empty_dir = hint;
  empty_dir.insert(empty_dir.end(), {dir.path().string(), "train-images-idx3-ubyte.gz"});
  EXPECT_TRUE(ThrowsWith<io::FormatError>(
      [&] { io::load_fashion_mnist(dir.path(), io::Split::Train); }, empty_dir));
  // The images there, the labels not.
  dir.write("t10k-images-idx3-ubyte.gz", idx_bytes(0x08, {0, 28, 28}, {}));
  auto no_labels = hint;
  no_labels.push_back("t10k-labels-idx1-ubyte.gz");
  EXPECT_TRUE(ThrowsWith<io::FormatError>(
      [&] { io::load_fashion_mnist(dir.path(), io::Split::Test); }, no_labels));
}

// ---------------------------------------------------------------------------------------------
// Named parameters in optimizers, and a model saved and loaded in one call.

TEST(Misuse, OptimizerStepNamesTheParameterWhoseUpdateIsNotFinite) {
  Generator generator(3);
  auto model = nn::MLP({2, 3, 1}, nn::Activation::tanh, generator);
  nn::Adam adam(model->named_parameters(), {.lr = 0.01});
  EXPECT_EQ(adam.parameter_names(),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  for (auto& [name, p] : model->named_parameters()) p.set_grad(ones_like(p));
  Tensor bias = model->parameter("2.bias");
  bias.set_grad(tapegrad::tensor({kInf}));
  EXPECT_THROWS_WITH(adam.step(), ValueError, "Adam", "'2.bias' (parameter 3, shape [1])",
                     "element [0]", "unchanged");
  // Named duplicates say both names.
  const Tensor w = zeros(Shape{2}).requires_grad_();
  EXPECT_THROWS_WITH(nn::SGD(std::vector<std::pair<std::string, Tensor>>{{"a", w}, {"b", w}}),
                     ValueError, "'b' (parameter 1, shape [2])", "same tensor as 'a'");
}

// The sentence of the issue, verbatim: it used to need a named lvalue.
TEST(Checkpoint, LoadIntoTakesTheModelsNamedParametersDirectly) {
  TempDir dir;
  Generator generator(11);
  auto saved = nn::MLP({3, 4, 2}, nn::Activation::relu, generator);
  auto model = nn::MLP({3, 4, 2}, nn::Activation::relu, generator);
  const fs::path path = dir.path() / "mlp.safetensors";
  io::save_safetensors(path, saved->named_parameters());
  io::load_into(path, model->named_parameters());
  for (const auto& [name, p] : saved->named_parameters()) {
    expect_bitwise_equal(values_of(model->parameter(name)), values_of(p), name);
  }
}

TEST(Checkpoint, SaveModelAndLoadModelRoundTripWithMetadata) {
  TempDir dir;
  Generator generator(12);
  auto saved = nn::MLP({3, 4, 2}, nn::Activation::relu, generator);
  auto model = nn::MLP({3, 4, 2}, nn::Activation::relu, generator);
  const fs::path path = dir.path() / "mlp.safetensors";
  io::save_model(*saved, path, {{"epoch", "3"}});
  const std::map<std::string, std::string> metadata = io::load_model(*model, path);
  EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"epoch", "3"}}));
  for (const auto& [name, p] : saved->named_parameters()) {
    expect_bitwise_equal(values_of(model->parameter(name)), values_of(p), name);
  }
  // The file holds exactly the PyTorch names.
  std::vector<std::string> stored;
  for (const auto& [name, t] : io::read_safetensors(path).tensors) stored.push_back(name);
  EXPECT_EQ(stored, (std::vector<std::string>{"0.bias", "0.weight", "2.bias", "2.weight"}));

  // All or nothing: another architecture is refused and nothing changes.
  auto wider = nn::MLP({3, 5, 2}, nn::Activation::relu, generator);
  const std::vector<double> before = values_of(wider->parameter("2.bias"));
  EXPECT_THROWS_WITH(io::load_model(*wider, path), io::FormatError, "load_model", path.string(),
                     "tensor '0.weight' has shape [4, 3] in the file but [5, 3] in the model");
  expect_bitwise_equal(values_of(wider->parameter("2.bias")), before, "2.bias");
  EXPECT_THROWS_WITH(io::load_model(*model, dir.path() / "missing.safetensors"), io::FormatError,
                     "load_model", "cannot open");
}

TEST(Checkpoint, ModelWithASharedLayerIsStoredOnceAndLoadsBack) {
  TempDir dir;
  Generator generator(13);
  auto lin = std::make_shared<nn::Linear>(2, 2, generator);
  nn::Sequential saved({lin, std::make_shared<nn::Tanh>(), lin});
  const fs::path path = dir.path() / "shared.safetensors";
  io::save_model(saved, path);
  EXPECT_EQ(io::read_safetensors(path).tensors.size(), 2u);
  auto other = std::make_shared<nn::Linear>(2, 2, generator);
  nn::Sequential loaded({other, std::make_shared<nn::Tanh>(), other});
  io::load_model(loaded, path);
  expect_bitwise_equal(values_of(other->parameter("weight")), values_of(lin->parameter("weight")),
                       "weight");
}

// The conversion that the .pt message points to (docs/errors.md, "Converting a PyTorch
// checkpoint") works as printed: the script is taken from the doc itself.
TEST(Checkpoint, PyTorchCheckpointConvertedByTheDocumentedScriptLoads) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const fs::path doc = source_dir() / "docs" / "errors.md";
  std::ifstream in(doc);
  ASSERT_TRUE(in) << doc;
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string marker = "```python\n# pt_to_safetensors.py";
  const std::size_t begin = text.find(marker);
  ASSERT_NE(begin, std::string::npos) << "no converter block in " << doc;
  const std::size_t end = text.find("```\n", begin + marker.size());
  ASSERT_NE(end, std::string::npos);
  const std::string converter = text.substr(begin + 10, end - begin - 10);

  TempDir dir;
  const fs::path pt = dir.path() / "model.pt";
  const fs::path converted = dir.path() / "model.safetensors";
  {
    std::ofstream out(dir.path() / "pt_to_safetensors.py");
    out << converter;
  }
  const std::string output = run_python(
      fmt::format(R"(import subprocess, sys, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
torch.save(model.state_dict(), '{0}')
subprocess.run([sys.executable, '{1}', '{0}', '{2}'], check=True)
print(" ".join(repr(v) for p in model.state_dict().values() for v in p.double().flatten().tolist()))
)",
                  pt.string(), (dir.path() / "pt_to_safetensors.py").string(), converted.string()),
      dir);
  ASSERT_FALSE(output.empty() || output.starts_with("FAILED")) << output;
  // The .pt itself is refused with the hint; the converted file loads into the same model.
  EXPECT_THROWS_WITH(io::read_safetensors(pt), io::FormatError, "zip", "torch.save");
  Generator generator(1);
  auto model = nn::MLP({3, 4, 2}, nn::Activation::relu, generator);
  io::load_model(*model, converted);
  std::istringstream numbers(output);
  std::vector<double> expected;
  for (double v = 0; numbers >> v;) expected.push_back(v);
  std::vector<double> actual;
  for (const char* name : {"0.weight", "0.bias", "2.weight", "2.bias"}) {
    const std::vector<double> v = values_of(model->parameter(name));
    actual.insert(actual.end(), v.begin(), v.end());
  }
  // float32 weights widened to float64 on both sides: exact.
  expect_bitwise_equal(actual, expected, "converted weights");
}

}  // namespace
