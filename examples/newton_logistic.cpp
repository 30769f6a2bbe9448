// Logistic regression two ways: Newton's method with the autodiff Hessian, and plain gradient
// descent, on one seeded dataset.
//
//   data     X [N, D] (last column 1: the bias), y in {0, 1}, drawn from a known w*
//   model    p = sigmoid(X w)
//   loss     L(w) = mean_n bce_with_logits((X w)_n, y_n)
//   gradient dL/dw = X^T (p - y) / N
//   Hessian  d2L/dw2 = X^T diag(p (1 - p)) X / N    (the autodiff one is checked against this)
//   Newton   w <- w - H^-1 g      (H is positive definite here: solved by Cholesky)
//   descent  w <- w - lr g
//
// Newton converges in a handful of steps; gradient descent takes hundreds to get as close.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

constexpr std::int64_t N = 200;
constexpr std::int64_t D = 4;  // 3 features + the bias column

// Solves A x = b for a symmetric positive definite A [n, n] (row-major) by Cholesky,
// A = L L^T, then L u = b and L^T x = u. Small and dependency-free; n is tiny here.
std::vector<double> cholesky_solve(std::vector<double> a, std::vector<double> b, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {  // a's lower triangle becomes L
    double d = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (d <= 0.0) throw ValueError("cholesky_solve: the matrix is not positive definite");
    a[j * n + j] = std::sqrt(d);
    for (std::size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / a[j * n + j];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {  // forward: L u = b
    for (std::size_t k = 0; k < i; ++k) b[i] -= a[i * n + k] * b[k];
    b[i] /= a[i * n + i];
  }
  for (std::size_t i = n; i-- > 0;) {  // back: L^T x = u
    for (std::size_t k = i + 1; k < n; ++k) b[i] -= a[k * n + i] * b[k];
    b[i] /= a[i * n + i];
  }
  return b;
}

struct Data {
  Tensor x;  // [N, D]
  Tensor y;  // [N]
};

Data make_data() {
  Generator gen(7);
  const std::vector<double> w_true = {1.5, -2.0, 0.75, 0.3};
  std::vector<double> xs(N * D), ys(N);
  for (std::int64_t n = 0; n < N; ++n) {
    double z = 0.0;
    for (std::int64_t d = 0; d < D; ++d) {
      const double v = d + 1 == D ? 1.0 : gen.normal();
      xs[static_cast<std::size_t>(n * D + d)] = v;
      z += w_true[static_cast<std::size_t>(d)] * v;
    }
    ys[static_cast<std::size_t>(n)] = gen.uniform() < 1.0 / (1.0 + std::exp(-z)) ? 1.0 : 0.0;
  }
  return {from_values(xs, {N, D}), from_values(ys, {N})};
}

// L(w) for w [D]; matmul wants [D, 1], the functional tools want w as it is.
Tensor loss_of(const Data& data, const Tensor& w) {
  const Tensor logits = reshape(matmul(data.x, reshape(w, {D, 1})), {N});
  return nn::bce_with_logits(logits, data.y);
}

Tensor gradient_of(const Data& data, const Tensor& w) {
  return jacobian([&](const Tensor& v) { return loss_of(data, v); }, w);  // scalar f: the gradient
}

// X^T diag(p (1 - p)) X / N in plain doubles.
std::vector<double> closed_form_hessian(const Data& data, const Tensor& w) {
  std::vector<double> h(D * D, 0.0);
  const auto x = data.x.values();
  for (std::int64_t n = 0; n < N; ++n) {
    double z = 0.0;
    for (std::int64_t d = 0; d < D; ++d)
      z += x[static_cast<std::size_t>(n * D + d)] * w.values()[static_cast<std::size_t>(d)];
    const double p = 1.0 / (1.0 + std::exp(-z));
    for (std::int64_t i = 0; i < D; ++i) {
      for (std::int64_t j = 0; j < D; ++j) {
        h[static_cast<std::size_t>(i * D + j)] += x[static_cast<std::size_t>(n * D + i)] * p *
                                                  (1.0 - p) *
                                                  x[static_cast<std::size_t>(n * D + j)] / N;
      }
    }
  }
  return h;
}

}  // namespace

int main() {
  const Data data = make_data();
  constexpr int newton_steps = 8;
  constexpr int descent_steps = 2000;
  constexpr double learning_rate = 1.0;

  // Newton's method.
  Tensor w = zeros({D});
  std::vector<double> newton_loss;
  double worst_hessian_difference = 0.0;
  for (int step = 0; step <= newton_steps; ++step) {
    newton_loss.push_back(loss_of(data, w).item());
    if (step == newton_steps) break;
    const Tensor g = gradient_of(data, w);
    const Tensor h = hessian([&](const Tensor& v) { return loss_of(data, v); }, w);
    const std::vector<double> closed = closed_form_hessian(data, w);
    for (std::size_t k = 0; k < closed.size(); ++k) {
      worst_hessian_difference =
          std::max(worst_hessian_difference, std::abs(h.values()[k] - closed[k]));
    }
    const std::vector<double> step_vector =
        cholesky_solve({h.values().begin(), h.values().end()},
                       {g.values().begin(), g.values().end()}, static_cast<std::size_t>(D));
    std::vector<double> next(w.values().begin(), w.values().end());
    for (std::size_t d = 0; d < next.size(); ++d) next[d] -= step_vector[d];
    w = from_values(std::move(next), {D});
  }
  const Tensor w_newton = w;

  // Gradient descent from the same start.
  w = zeros({D});
  std::vector<double> descent_loss;
  for (int step = 0; step <= descent_steps; ++step) {
    descent_loss.push_back(loss_of(data, w).item());
    if (step == descent_steps) break;
    const Tensor g = gradient_of(data, w);
    std::vector<double> next(w.values().begin(), w.values().end());
    for (std::size_t d = 0; d < next.size(); ++d) next[d] -= learning_rate * g.values()[d];
    w = from_values(std::move(next), {D});
  }

  fmt::print("logistic regression, N = {} samples, D = {} weights (bias included)\n\n", N, D);
  fmt::print("{:>6}  {:>22}  {:>22}\n", "step", "Newton loss", "gradient descent loss");
  for (int step = 0; step <= newton_steps; ++step) {
    fmt::print("{:>6}  {:>22.15f}  {:>22.15f}\n", step, newton_loss[static_cast<std::size_t>(step)],
               descent_loss[static_cast<std::size_t>(step)]);
  }
  for (int step : {25, 50, 100, 200, 500, 1000, 2000}) {
    fmt::print("{:>6}  {:>22}  {:>22.15f}\n", step, "",
               descent_loss[static_cast<std::size_t>(step)]);
  }
  const double best = newton_loss.back();
  int caught_up = -1;
  for (std::size_t s = 0; s < descent_loss.size(); ++s) {
    if (descent_loss[s] - best < 1e-10) {
      caught_up = static_cast<int>(s);
      break;
    }
  }
  fmt::print("\nNewton weights           {}\n", w_newton);
  fmt::print("gradient descent weights {}\n", w);
  fmt::print("max |autodiff Hessian - X^T diag(p(1-p)) X / N| over the Newton steps: {:.3g}\n",
             worst_hessian_difference);
  if (caught_up >= 0) {
    fmt::print("gradient descent (lr {}) came within 1e-10 of Newton's loss after {} steps\n",
               learning_rate, caught_up);
  } else {
    fmt::print("gradient descent (lr {}) was still {:.3g} above Newton's loss after {} steps\n",
               learning_rate, descent_loss.back() - best, descent_steps);
  }
  return 0;
}
