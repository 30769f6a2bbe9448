// TorchParity.RandomCompositions: issue 13's PyTorch replay. A seeded generator builds a few
// hundred random chains of 2-5 ops (the functions of issue 13 and the ops before them) on random
// shapes, with broadcasting partners and axes drawn at random. Each chain is built twice at once:
// as tapegrad code and as the PyTorch expression that means the same; tests/torch_oracle.hpp
// compares values and gradients of every input in float64 at 1e-12.
//
// The generator looks at the values computed so far (evaluated eagerly, no tape) to keep each op
// inside its domain and well conditioned (tan only of small values, log only of positive ones,
// exp only where it cannot overflow): a chain that overflows would compare inf with inf and test
// nothing, and an ill-conditioned one would amplify rounding beyond 1e-12 in both libraries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Span = std::span<const Tensor>;
using Dims = std::vector<std::int64_t>;

// An expression built so far: how tapegrad computes it from the case's inputs, how PyTorch
// writes it, and its value (to steer the next choice).
struct Expr {
  std::function<Tensor(Span)> f;
  std::string torch;
  Tensor value;
};

// What the values of an expression allow.
struct Range {
  double low = 0, high = 0, max_abs = 0;
  bool finite = true;
};
Range range_of(const Tensor& t) {
  Range r{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), 0,
          true};
  for (double v : t.values()) {
    r.finite = r.finite && std::isfinite(v);
    r.low = std::min(r.low, v);
    r.high = std::max(r.high, v);
    r.max_abs = std::max(r.max_abs, std::abs(v));
  }
  return r;
}

std::string dims_text(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.rank(); ++i) out += fmt::format("{}{}", i ? ", " : "", s[i]);
  return out + "]";
}

class Generator2 {
 public:
  explicit Generator2(std::uint64_t seed) : gen_(seed) {}

  std::size_t below(std::size_t n) { return static_cast<std::size_t>(gen_.below(n)); }
  bool coin() { return below(2) == 1; }
  template <class T>
  const T& pick(const std::vector<T>& options) {
    return options[below(options.size())];
  }
  double uniform(double low, double high) { return low + (high - low) * gen_.uniform(); }

  // A shape of rank 0 to 3 with dimensions 1 to 4.
  Shape shape() {
    const std::size_t rank = below(4);
    Dims d;
    for (std::size_t i = 0; i < rank; ++i) d.push_back(static_cast<std::int64_t>(1 + below(4)));
    return Shape(d);
  }

  // A shape that broadcasts with `s`: the same, a suffix of it, some dimensions set to 1, a
  // scalar, or one with an extra leading dimension (so the result grows).
  Shape partner(const Shape& s) {
    Dims d = s.dims();
    switch (below(5)) {
      case 0:
        return s;
      case 1:
        d.erase(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(below(d.size() + 1)));
        return Shape(d);
      case 2:
        for (auto& v : d) v = coin() ? 1 : v;
        return Shape(d);
      case 3:
        return Shape{};
      default:
        if (d.size() < 3) d.insert(d.begin(), static_cast<std::int64_t>(2 + below(2)));
        return Shape(d);
    }
  }

  // A fresh input leaf of `shape`, N(0, scale^2) or uniform in [low, high).
  Tensor normal(const Shape& shape, double scale = 1.0) {
    std::vector<double> v(shape.numel());
    for (double& x : v) x = scale * gen_.normal();
    return from_values(std::move(v), shape).requires_grad_();
  }
  Tensor uniform(const Shape& shape, double low, double high) {
    std::vector<double> v(shape.numel());
    for (double& x : v) x = uniform(low, high);
    return from_values(std::move(v), shape).requires_grad_();
  }

 private:
  tapegrad::Generator gen_;
};

// One random case: its inputs and the chain built on them.
struct Case {
  std::vector<Tensor> inputs;
  Expr expr;
  std::vector<std::string> steps;  // op names, for the case's label
};

class Builder {
 public:
  explicit Builder(Generator2& g) : g_(g) {}

  Case build(std::size_t length) {
    Case c;
    case_ = &c;
    const std::size_t x = add_input(g_.normal(g_.shape()));
    c.expr = input(x);
    for (std::size_t k = 0; k < length; ++k) {
      // A few tries: a step may refuse the current values (tan of a large value, log of a
      // negative one) and another is drawn.
      for (int attempt = 0; attempt < 20; ++attempt) {
        if (step(c.expr)) break;
      }
    }
    case_ = nullptr;
    return c;
  }

 private:
  std::size_t add_input(Tensor t) {
    case_->inputs.push_back(std::move(t));
    return case_->inputs.size() - 1;
  }
  Expr input(std::size_t i) {
    return {[i](Span x) { return x[i]; }, fmt::format("x{}", i), case_->inputs[i]};
  }

  // Applies a unary tapegrad op, with its PyTorch spelling ("{}" is the operand).
  void unary(Expr& e, const std::string& name, std::function<Tensor(const Tensor&)> op,
             const std::string& torch) {
    auto f = e.f;
    e.f = [f, op](Span x) { return op(f(x)); };
    e.torch = fmt::format(fmt::runtime(torch), e.torch);
    e.value = op(e.value);
    case_->steps.push_back(name);
  }

  // A fresh input as the other operand of a binary op; a third of the time passed through a
  // smooth function first, so the two sides of the op are both computed (and both get a
  // gradient that is not the seed's).
  Expr fresh(Tensor t, bool plain = false) {
    Expr e = input(add_input(std::move(t)));
    if (plain || g_.below(3) != 0) return e;
    struct Smooth {
      const char* name;
      Tensor (*op)(const Tensor&);
      const char* torch;
    };
    static const std::vector<Smooth> smooth = {
        {"sin", [](const Tensor& t) { return sin(t); }, "torch.sin({})"},
        {"tanh", [](const Tensor& t) { return tanh(t); }, "torch.tanh({})"},
        {"erf", [](const Tensor& t) { return erf(t); }, "torch.erf({})"},
        {"gelu", [](const Tensor& t) { return gelu(t); }, "F.gelu({})"},
        {"silu", [](const Tensor& t) { return silu(t); }, "F.silu({})"},
        {"softplus", [](const Tensor& t) { return softplus(t); }, "F.softplus({})"},
        {"elu", [](const Tensor& t) { return elu(t); }, "F.elu({})"},
    };
    const Smooth& w = g_.pick(smooth);
    unary(e, w.name, w.op, w.torch);
    return e;
  }

  // Applies a binary op to e and `other`, e on the left or on the right.
  void binary(Expr& e, const std::string& name,
              std::function<Tensor(const Tensor&, const Tensor&)> op, const std::string& torch,
              const Expr& other, bool current_on_left) {
    auto f = e.f;
    auto h = other.f;
    if (current_on_left) {
      e.f = [f, h, op](Span x) { return op(f(x), h(x)); };
      e.torch = fmt::format(fmt::runtime(torch), e.torch, other.torch);
      e.value = op(e.value, other.value);
    } else {
      e.f = [f, h, op](Span x) { return op(h(x), f(x)); };
      e.torch = fmt::format(fmt::runtime(torch), other.torch, e.torch);
      e.value = op(other.value, e.value);
    }
    case_->steps.push_back(name);
  }

  std::int64_t random_axis(const Shape& s) {
    const auto rank = static_cast<std::int64_t>(s.rank());
    return static_cast<std::int64_t>(g_.below(static_cast<std::size_t>(2 * rank))) - rank;
  }

  // One random op on e; false when the drawn op does not suit e's values or shape.
  bool step(Expr& e) {
    const Range r = range_of(e.value);
    if (!r.finite) return false;
    const Shape s = e.value.shape();
    const std::size_t rank = s.rank();
    const std::size_t kind = g_.below(kinds);
    switch (kind) {
      // --- the functions of issue 13
      case 0:
        if (r.max_abs > 50) return false;
        if (g_.coin()) {
          unary(
              e, "sin", [](const Tensor& t) { return sin(t); }, "torch.sin({})");
        } else {
          unary(
              e, "cos", [](const Tensor& t) { return cos(t); }, "torch.cos({})");
        }
        return true;
      case 1:
        if (r.max_abs > 1.2) return false;
        unary(
            e, "tan", [](const Tensor& t) { return tan(t); }, "torch.tan({})");
        return true;
      case 2:
        if (r.low <= -0.5) return false;
        unary(
            e, "log1p", [](const Tensor& t) { return log1p(t); }, "torch.log1p({})");
        return true;
      case 3:
        if (r.high > 8) return false;
        unary(
            e, "expm1", [](const Tensor& t) { return expm1(t); }, "torch.expm1({})");
        return true;
      case 4:
        unary(
            e, "erf", [](const Tensor& t) { return erf(t); }, "torch.erf({})");
        return true;
      case 5: {
        const double beta = g_.pick(std::vector<double>{1.0, 0.5, 2.0, -1.0});
        const double threshold = g_.pick(std::vector<double>{20.0, 1.0, 3.0});
        unary(
            e, "softplus", [=](const Tensor& t) { return softplus(t, beta, threshold); },
            fmt::format("F.softplus({{}}, beta={}, threshold={})", beta, threshold));
        return true;
      }
      case 6:
        if (g_.coin()) {
          unary(
              e, "gelu", [](const Tensor& t) { return gelu(t); }, "F.gelu({})");
        } else {
          unary(
              e, "gelu tanh", [](const Tensor& t) { return gelu(t, "tanh"); },
              "F.gelu({}, approximate='tanh')");
        }
        return true;
      case 7:
        unary(
            e, "silu", [](const Tensor& t) { return silu(t); }, "F.silu({})");
        return true;
      case 8: {
        const double slope = g_.pick(std::vector<double>{0.01, 0.2, 1.5});
        unary(
            e, "leaky_relu", [=](const Tensor& t) { return leaky_relu(t, slope); },
            fmt::format("F.leaky_relu({{}}, {})", slope));
        return true;
      }
      case 9: {
        if (r.high > 600) return false;
        const double alpha = g_.pick(std::vector<double>{1.0, 0.5, 2.0});
        unary(
            e, "elu", [=](const Tensor& t) { return elu(t, alpha); },
            fmt::format("F.elu({{}}, {})", alpha));
        return true;
      }
      case 10: {
        const bool is_min = g_.coin();
        binary(
            e, is_min ? "minimum" : "maximum",
            [is_min](const Tensor& a, const Tensor& b) {
              return is_min ? minimum(a, b) : maximum(a, b);
            },
            is_min ? "torch.minimum({}, {})" : "torch.maximum({}, {})",
            fresh(g_.normal(g_.partner(s))), g_.coin());
        return true;
      }
      // --- the ops before issue 13
      case 11: {
        const std::size_t which = g_.below(4);
        const char* names[] = {"add", "sub", "mul", "div"};
        const char* spell[] = {"({} + {})", "({} - {})", "({} * {})", "({} / {})"};
        bool left = g_.coin();
        // Divide by something kept away from 0: the current values when they are (at random),
        // else a fresh input in [0.5, 2).
        const bool safe_divisor =
            r.low * r.high > 0 && std::min(std::abs(r.low), std::abs(r.high)) >= 0.3;
        if (which == 3 && !safe_divisor) left = true;
        const Expr other = which == 3 && left ? fresh(g_.uniform(g_.partner(s), 0.5, 2.0), true)
                                              : fresh(g_.normal(g_.partner(s)));
        binary(
            e, names[which],
            [which](const Tensor& a, const Tensor& b) {
              switch (which) {
                case 0:
                  return a + b;
                case 1:
                  return a - b;
                case 2:
                  return a * b;
                default:
                  return a / b;
              }
            },
            spell[which], other, left);
        return true;
      }
      case 12:
        switch (g_.below(5)) {
          case 0:
            unary(
                e, "sigmoid", [](const Tensor& t) { return sigmoid(t); }, "torch.sigmoid({})");
            return true;
          case 1:
            unary(
                e, "tanh", [](const Tensor& t) { return tanh(t); }, "torch.tanh({})");
            return true;
          case 2:
            unary(
                e, "relu", [](const Tensor& t) { return relu(t); }, "torch.relu({})");
            return true;
          case 3:
            unary(
                e, "abs", [](const Tensor& t) { return abs(t); }, "torch.abs({})");
            return true;
          default:
            unary(
                e, "clamp", [](const Tensor& t) { return clamp(t, -0.5, 0.7); },
                "torch.clamp({}, -0.5, 0.7)");
            return true;
        }
      case 13:
        switch (g_.below(4)) {
          case 0:
            if (r.high > 8) return false;
            unary(
                e, "exp", [](const Tensor& t) { return exp(t); }, "torch.exp({})");
            return true;
          case 1:
            if (r.low < 0.2) return false;
            unary(
                e, "log", [](const Tensor& t) { return log(t); }, "torch.log({})");
            return true;
          case 2:
            if (r.low < 0.2) return false;
            unary(
                e, "sqrt", [](const Tensor& t) { return sqrt(t); }, "torch.sqrt({})");
            return true;
          default:
            if (r.max_abs > 30) return false;
            unary(
                e, "square", [](const Tensor& t) { return square(t); }, "torch.square({})");
            return true;
        }
      case 14: {  // reductions along a random axis (negative too), keepdim at random
        if (rank == 0) return false;
        const std::int64_t axis = random_axis(s);
        const bool keep = g_.coin();
        const std::string k = keep ? "True" : "False";
        switch (g_.below(4)) {
          case 0:
            unary(
                e, "sum", [=](const Tensor& t) { return sum(t, axis, keep); },
                fmt::format("torch.sum({{}}, {}, keepdim={})", axis, k));
            return true;
          case 1:
            unary(
                e, "mean", [=](const Tensor& t) { return mean(t, axis, keep); },
                fmt::format("torch.mean({{}}, {}, keepdim={})", axis, k));
            return true;
          case 2:
            unary(
                e, "max", [=](const Tensor& t) { return max(t, axis, keep); },
                fmt::format("torch.amax({{}}, {}, keepdim={})", axis, k));
            return true;
          default:
            unary(
                e, "logsumexp", [=](const Tensor& t) { return logsumexp(t, axis, keep); },
                fmt::format("torch.logsumexp({{}}, {}, keepdim={})", axis, k));
            return true;
        }
      }
      case 15: {  // softmax family along a random axis
        if (rank == 0) return false;
        const std::int64_t axis = random_axis(s);
        if (g_.coin()) {
          unary(
              e, "softmax", [=](const Tensor& t) { return softmax(t, axis); },
              fmt::format("torch.softmax({{}}, {})", axis));
        } else {
          unary(
              e, "log_softmax", [=](const Tensor& t) { return log_softmax(t, axis); },
              fmt::format("torch.log_softmax({{}}, {})", axis));
        }
        return true;
      }
      case 16: {  // moving values: transpose, reshape, matmul with a fresh matrix
        if (rank >= 2 && g_.coin()) {
          const std::int64_t a = random_axis(s);
          const std::int64_t b = random_axis(s);
          unary(
              e, "transpose", [=](const Tensor& t) { return transpose(t, a, b); },
              fmt::format("torch.transpose({{}}, {}, {})", a, b));
          return true;
        }
        if (rank == 2) {
          const auto m = static_cast<std::int64_t>(1 + g_.below(4));
          binary(
              e, "matmul", [](const Tensor& a, const Tensor& b) { return matmul(a, b); },
              "({} @ {})", fresh(g_.normal(Shape{s[1], m})), true);
          return true;
        }
        if (rank == 0) return false;
        unary(
            e, "reshape", [](const Tensor& t) { return reshape(t, {-1}); }, "{}.reshape(-1)");
        return true;
      }
      default:
        return step_issue13(e, kind - own_kinds);
    }
  }

  // A constant index tensor (doubles holding integers in [0, bound)) as an input of the case,
  // which PyTorch reads with .long(). Returns the tensor and its name.
  std::pair<Tensor, std::string> index_input(const Shape& shape, std::int64_t bound) {
    std::vector<double> v(shape.numel());
    for (double& x : v) x = static_cast<double>(g_.below(static_cast<std::size_t>(bound)));
    const std::size_t i = add_input(from_values(std::move(v), shape));
    return {case_->inputs[i], fmt::format("x{}.long()", i)};
  }
  // A constant 0/1 tensor (a condition or a mask) as an input; PyTorch reads it with `!= 0`.
  std::pair<Tensor, std::string> mask_input(const Shape& shape) {
    std::vector<double> v(shape.numel());
    for (double& x : v) x = g_.coin() ? 1.0 : 0.0;
    const std::size_t i = add_input(from_values(std::move(v), shape));
    return {case_->inputs[i], fmt::format("(x{} != 0)", i)};
  }
  // A shape that broadcasts TO s (a suffix of it with some dimensions 1): masked_fill's masks.
  Shape broadcasts_to(const Shape& s) {
    Dims d = s.dims();
    d.erase(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(g_.below(d.size() + 1)));
    for (auto& v : d) v = g_.coin() ? 1 : v;
    return Shape(d);
  }
  std::size_t positive_axis(const Shape& s, std::int64_t axis) {
    return static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::int64_t>(s.rank()) : axis);
  }
  static std::string tuple_text(const Dims& d) {
    std::string out = "(";
    for (std::size_t i = 0; i < d.size(); ++i) out += fmt::format("{}, ", d[i]);
    return out + ")";
  }

  // The ops of issue 13 built on the other branches: shape, select, join, index, mask, batched
  // matmul, reductions.
  bool step_issue13(Expr& e, std::size_t kind) {
    const Shape s = e.value.shape();
    const std::size_t rank = s.rank();
    const auto irank = static_cast<std::int64_t>(rank);
    switch (kind) {
      case 0: {  // squeeze, unsqueeze, flatten
        switch (g_.below(3)) {
          case 0: {
            if (rank >= 3) return false;
            const std::int64_t a = static_cast<std::int64_t>(g_.below(2 * rank + 2)) - (irank + 1);
            unary(
                e, "unsqueeze", [=](const Tensor& t) { return unsqueeze(t, a); },
                fmt::format("torch.unsqueeze({{}}, {})", a));
            return true;
          }
          case 1:
            if (rank == 0 || g_.coin()) {
              unary(
                  e, "squeeze", [](const Tensor& t) { return squeeze(t); }, "torch.squeeze({})");
            } else {
              const std::int64_t a = random_axis(s);
              unary(
                  e, "squeeze axis", [=](const Tensor& t) { return squeeze(t, a); },
                  fmt::format("torch.squeeze({{}}, {})", a));
            }
            return true;
          default: {
            if (rank == 0) {
              unary(
                  e, "flatten", [](const Tensor& t) { return flatten(t); }, "torch.flatten({})");
              return true;
            }
            auto start = static_cast<std::int64_t>(g_.below(rank));
            auto end =
                start + static_cast<std::int64_t>(g_.below(rank - static_cast<std::size_t>(start)));
            if (g_.coin()) start -= irank;
            if (g_.coin()) end -= irank;
            unary(
                e, "flatten", [=](const Tensor& t) { return flatten(t, start, end); },
                fmt::format("torch.flatten({{}}, {}, {})", start, end));
            return true;
          }
        }
      }
      case 1: {  // permute, expand
        if (rank >= 2 && g_.coin()) {
          Dims dims(rank);
          for (std::size_t i = 0; i < rank; ++i) dims[i] = static_cast<std::int64_t>(i);
          for (std::size_t i = rank; i > 1; --i) std::swap(dims[i - 1], dims[g_.below(i)]);
          unary(
              e, "permute", [=](const Tensor& t) { return permute(t, dims); },
              fmt::format("torch.permute({{}}, {})", tuple_text(dims)));
          return true;
        }
        Dims target;
        if (rank < 3 && (rank == 0 || g_.coin()))
          target.push_back(static_cast<std::int64_t>(2 + g_.below(2)));
        for (std::size_t i = 0; i < rank; ++i) {
          if (s[i] == 1) {
            target.push_back(static_cast<std::int64_t>(1 + g_.below(3)));
          } else {
            target.push_back(g_.coin() ? -1 : s[i]);
          }
        }
        if (target.empty()) return false;
        std::string args;
        for (std::size_t i = 0; i < target.size(); ++i)
          args += fmt::format("{}{}", i ? ", " : "", target[i]);
        unary(
            e, "expand", [=](const Tensor& t) { return expand(t, target); },
            fmt::format("{{}}.expand({})", args));
        return true;
      }
      case 2: {  // narrow, slice, select
        if (rank == 0) return false;
        const std::int64_t a = random_axis(s);
        const std::size_t pa = positive_axis(s, a);
        const std::int64_t n = s[pa];
        switch (g_.below(3)) {
          case 0: {
            const auto start = static_cast<std::int64_t>(g_.below(static_cast<std::size_t>(n)));
            const auto length =
                1 + static_cast<std::int64_t>(g_.below(static_cast<std::size_t>(n - start)));
            const std::int64_t given = g_.coin() ? start - n : start;
            unary(
                e, "narrow", [=](const Tensor& t) { return narrow(t, a, given, length); },
                fmt::format("torch.narrow({{}}, {}, {}, {})", a, given, length));
            return true;
          }
          case 1: {
            // Python's bounds: negative counts from the end, then clamped to [0, n]; only
            // non-empty results are kept.
            const std::int64_t start =
                static_cast<std::int64_t>(g_.below(static_cast<std::size_t>(2 * n + 2))) - n - 1;
            const bool to_end = g_.coin();
            const std::int64_t stop =
                to_end
                    ? slice_end
                    : static_cast<std::int64_t>(g_.below(static_cast<std::size_t>(2 * n + 2))) - n;
            const auto step_size = static_cast<std::int64_t>(1 + g_.below(3));
            auto clampn = [n](std::int64_t v) {
              return std::clamp(v < 0 ? v + n : v, std::int64_t{0}, n);
            };
            const std::int64_t b = clampn(start), c = to_end ? n : clampn(stop);
            if (c <= b) return false;
            std::string index;
            for (std::size_t i = 0; i < pa; ++i) index += ":, ";
            index += fmt::format("{}:{}:{}", start, to_end ? std::string() : std::to_string(stop),
                                 step_size);
            unary(
                e, "slice", [=](const Tensor& t) { return slice(t, a, start, stop, step_size); },
                fmt::format("{{}}[{}]", index));
            return true;
          }
          default: {
            const std::int64_t index =
                static_cast<std::int64_t>(g_.below(static_cast<std::size_t>(2 * n))) - n;
            unary(
                e, "select", [=](const Tensor& t) { return select(t, a, index); },
                fmt::format("torch.select({{}}, {}, {})", a, index));
            return true;
          }
        }
      }
      case 3: {  // cat, stack with a fresh partner
        if (rank >= 1 && g_.coin()) {
          const std::int64_t a = random_axis(s);
          Dims d = s.dims();
          d[positive_axis(s, a)] = static_cast<std::int64_t>(1 + g_.below(3));
          binary(
              e, "cat",
              [=](const Tensor& x, const Tensor& y) {
                return cat({x, y}, a);
              },
              fmt::format("torch.cat(({{}}, {{}}), {})", a), fresh(g_.normal(Shape(d))), g_.coin());
          return true;
        }
        if (rank >= 3) return false;
        const std::int64_t a = static_cast<std::int64_t>(g_.below(2 * rank + 2)) - (irank + 1);
        binary(
            e, "stack",
            [=](const Tensor& x, const Tensor& y) {
              return stack({x, y}, a);
            },
            fmt::format("torch.stack(({{}}, {{}}), {})", a), fresh(g_.normal(s)), g_.coin());
        return true;
      }
      case 4: {  // one piece of split or chunk
        if (rank == 0) return false;
        const std::int64_t a = random_axis(s);
        const std::int64_t n = s[positive_axis(s, a)];
        if (g_.coin()) {
          const auto size = static_cast<std::int64_t>(1 + g_.below(static_cast<std::size_t>(n)));
          const auto pieces = static_cast<std::size_t>((n + size - 1) / size);
          const std::size_t k = g_.below(pieces);
          unary(
              e, "split", [=](const Tensor& t) { return split(t, size, a)[k]; },
              fmt::format("torch.split({{}}, {}, {})[{}]", size, a, k));
        } else {
          const auto chunks =
              static_cast<std::int64_t>(1 + g_.below(static_cast<std::size_t>(n) + 1));
          const std::size_t pieces = chunk(e.value, chunks, a).size();
          const std::size_t k = g_.below(pieces);
          unary(
              e, "chunk", [=](const Tensor& t) { return chunk(t, chunks, a)[k]; },
              fmt::format("torch.chunk({{}}, {}, {})[{}]", chunks, a, k));
        }
        return true;
      }
      case 5: {  // index_select, gather, index_add, scatter_add
        if (rank == 0) return false;
        const std::int64_t a = random_axis(s);
        const std::size_t pa = positive_axis(s, a);
        const std::int64_t n = s[pa];
        const auto len = static_cast<std::int64_t>(1 + g_.below(4));
        switch (g_.below(4)) {
          case 0: {
            const auto [idx, name] = index_input(Shape{len}, n);
            unary(
                e, "index_select", [=](const Tensor& t) { return index_select(t, a, idx); },
                fmt::format("torch.index_select({{}}, {}, {})", a, name));
            return true;
          }
          case 1: {
            Dims d = s.dims();
            for (std::size_t i = 0; i < rank; ++i) {
              d[i] = i == pa
                         ? len
                         : static_cast<std::int64_t>(1 + g_.below(static_cast<std::size_t>(s[i])));
            }
            const auto [idx, name] = index_input(Shape(d), n);
            unary(
                e, "gather", [=](const Tensor& t) { return gather(t, a, idx); },
                fmt::format("torch.gather({{}}, {}, {})", a, name));
            return true;
          }
          case 2: {
            const auto [idx, name] = index_input(Shape{len}, n);
            Dims d = s.dims();
            d[pa] = len;
            binary(
                e, "index_add",
                [=](const Tensor& x, const Tensor& src) { return index_add(x, a, idx, src); },
                fmt::format("torch.index_add({{}}, {}, {}, {{}})", a, name),
                fresh(g_.normal(Shape(d))), true);
            return true;
          }
          default: {
            Dims d = s.dims();
            for (std::size_t i = 0; i < rank; ++i) {
              d[i] = i == pa
                         ? len
                         : static_cast<std::int64_t>(1 + g_.below(static_cast<std::size_t>(s[i])));
            }
            const auto [idx, name] = index_input(Shape(d), n);
            binary(
                e, "scatter_add",
                [=](const Tensor& x, const Tensor& src) { return scatter_add(x, a, idx, src); },
                fmt::format("torch.scatter_add({{}}, {}, {}, {{}})", a, name),
                fresh(g_.normal(Shape(d))), true);
            return true;
          }
        }
      }
      case 6: {  // where, masked_fill, masked softmax, tril/triu
        switch (g_.below(4)) {
          case 0: {
            // The condition never adds dimensions, so all three operands broadcast together.
            const auto [c, name] = mask_input(broadcasts_to(s));
            binary(
                e, "where", [=](const Tensor& x, const Tensor& y) { return where(c, x, y); },
                fmt::format("torch.where({}, {{}}, {{}})", name), fresh(g_.normal(g_.partner(s))),
                g_.coin());
            return true;
          }
          case 1: {
            const auto [m, name] = mask_input(broadcasts_to(s));
            const double value = g_.pick(std::vector<double>{0.0, -1.5, 2.0});
            unary(
                e, "masked_fill", [=](const Tensor& t) { return masked_fill(t, m, value); },
                fmt::format("{{}}.masked_fill({}, {})", name, value));
            return true;
          }
          case 2: {
            // Masked attention's pattern: -inf logits, then softmax along the masked axis. The
            // first element of every line stays unmasked, so no line is all -inf.
            if (rank == 0) return false;
            const std::int64_t a = random_axis(s);
            const std::size_t pa = positive_axis(s, a);
            std::size_t inner = 1;
            for (std::size_t i = pa + 1; i < rank; ++i) inner *= static_cast<std::size_t>(s[i]);
            std::vector<double> v(s.numel());
            for (std::size_t i = 0; i < v.size(); ++i) {
              v[i] = (i / inner) % static_cast<std::size_t>(s[pa]) == 0 ? 0.0
                                                                        : (g_.coin() ? 1.0 : 0.0);
            }
            const std::size_t i = add_input(from_values(std::move(v), s));
            const Tensor m = case_->inputs[i];
            unary(
                e, "masked softmax",
                [=](const Tensor& t) {
                  return softmax(masked_fill(t, m, -std::numeric_limits<double>::infinity()), a);
                },
                fmt::format("torch.softmax({{}}.masked_fill(x{} != 0, -math.inf), {})", i, a));
            return true;
          }
          default: {
            if (rank < 2) return false;
            const std::int64_t k = static_cast<std::int64_t>(g_.below(5)) - 2;
            if (g_.coin()) {
              unary(
                  e, "tril", [=](const Tensor& t) { return tril(t, k); },
                  fmt::format("torch.tril({{}}, {})", k));
            } else {
              unary(
                  e, "triu", [=](const Tensor& t) { return triu(t, k); },
                  fmt::format("torch.triu({{}}, {})", k));
            }
            return true;
          }
        }
      }
      case 7: {  // batched and 1-D matmul, bmm
        if (rank == 0) return false;
        const std::int64_t k = s[rank - 1];
        const auto m = static_cast<std::int64_t>(1 + g_.below(3));
        const auto batch = static_cast<std::int64_t>(2 + g_.below(2));
        Shape other;
        if (rank == 3 && g_.coin()) {
          binary(
              e, "bmm", [](const Tensor& x, const Tensor& y) { return bmm(x, y); },
              "torch.bmm({}, {})", fresh(g_.normal(Shape{s[0], k, m})), true);
          return true;
        }
        switch (g_.below(4)) {
          case 0:
            other = Shape{k};
            break;
          case 1:
            other = Shape{k, m};
            break;
          case 2:
            other = rank == 3 ? Shape{s[0], k, m} : Shape{batch, k, m};
            break;
          default:
            other = rank == 3 ? Shape{1, k, m} : Shape{batch, 1, k, m};
            break;
        }
        if (rank == 1 && other.rank() == 4) return false;
        binary(
            e, "matmul", [](const Tensor& x, const Tensor& y) { return matmul(x, y); },
            "torch.matmul({}, {})", fresh(g_.normal(other)), true);
        return true;
      }
      case 8: {  // min / amin, var, std_dev, argmax / argmin through gather
        if (rank == 0) return false;
        const std::int64_t a = random_axis(s);
        const std::int64_t n = s[positive_axis(s, a)];
        const bool keep = g_.coin();
        const std::string kt = keep ? "True" : "False";
        switch (g_.below(5)) {
          case 0:
            unary(
                e, "amin", [=](const Tensor& t) { return amin(t, a, keep); },
                fmt::format("torch.amin({{}}, {}, keepdim={})", a, kt));
            return true;
          case 1:
            unary(
                e, "min", [](const Tensor& t) { return min(t); }, "torch.amin({})");
            return true;
          case 2:
          case 3: {
            const double c = n > 1 ? static_cast<double>(g_.below(2)) : 0.0;
            const bool is_std = g_.coin();
            // A line whose values (nearly) coincide has a variance of rounding noise, and std's
            // gradient divides by it: keep to well-spread lines.
            const Range spread = range_of(var(e.value, a, c, keep));
            if (!(spread.low > 1e-6)) return false;
            if (is_std) {
              unary(
                  e, "std_dev", [=](const Tensor& t) { return std_dev(t, a, c, keep); },
                  fmt::format("torch.std({{}}, {}, correction={}, keepdim={})", a, c, kt));
            } else {
              unary(
                  e, "var", [=](const Tensor& t) { return var(t, a, c, keep); },
                  fmt::format("torch.var({{}}, {}, correction={}, keepdim={})", a, c, kt));
            }
            return true;
          }
          default: {
            // argmax/argmin are constants; gathering at them gives the max/min (first on ties).
            const bool is_max = g_.coin();
            unary(
                e, is_max ? "gather(argmax)" : "gather(argmin)",
                [=](const Tensor& t) {
                  return gather(t, a, is_max ? argmax(t, a, true) : argmin(t, a, true));
                },
                fmt::format("torch.gather({{0}}, {0}, torch.{1}({{0}}, {0}, keepdim=True))", a,
                            is_max ? "argmax" : "argmin"));
            return true;
          }
        }
      }
      default:
        return false;
    }
  }

  static constexpr std::size_t own_kinds = 17;  // the cases of step() above
  static constexpr std::size_t kinds = own_kinds + 9;
  Generator2& g_;
  Case* case_ = nullptr;
};

TEST(TorchParity, RandomCompositions) {
  constexpr std::size_t cases = 300;
  Generator2 g(13'2026'12'02);
  Builder builder(g);
  TorchOracle oracle;
  std::size_t ops = 0;
  for (std::size_t k = 0; k < cases; ++k) {
    Case c = builder.build(2 + g.below(4));
    ops += c.steps.size();
    std::string label = fmt::format("#{} {}:", k, dims_text(c.inputs[0].shape()));
    for (const std::string& s : c.steps) label += " " + s;
    auto f = c.expr.f;
    oracle.add(label, c.expr.torch, c.inputs, [f](Span x) { return Outputs{f(x)}; });
  }
  ASSERT_EQ(oracle.size(), cases);
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  fmt::print("TorchParity.RandomCompositions: {} cases, {} ops, worst error {:.3g}\n", r.cases, ops,
             r.worst_error);
  RecordProperty("worst_error", fmt::format("{:.3g}", r.worst_error));
}

}  // namespace
