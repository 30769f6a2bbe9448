// The Hessian of softmax + cross-entropy with respect to the logits, by autodiff (a backward
// recorded with create_graph, differentiated again) next to the closed form
//
//   L = -sum_i t_i ln p_i,  p = softmax(z)  =>  dL/dz = p - t,  d2L/dz2 = diag(p) - p p^T
//
// which does not depend on the target t (t drops out with the first derivative). Printed for the
// seed's composed loss and for the fused cross_entropy_with_logits, with the largest difference.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

void print_matrix(const std::string& title, const std::vector<double>& m, std::size_t n) {
  fmt::print("{}\n", title);
  for (std::size_t i = 0; i < n; ++i) {
    fmt::print("  ");
    for (std::size_t j = 0; j < n; ++j) fmt::print("{:>12.8f}", m[i * n + j]);
    fmt::print("\n");
  }
}

double max_difference(std::span<const double> a, const std::vector<double>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace

int main() {
  const Tensor z = tensor({1.0, -0.5, 2.0, 0.3});
  const Tensor t = tensor({0.0, 0.0, 1.0, 0.0});
  const std::size_t n = z.numel();

  const Tensor p = softmax(z);
  fmt::print("z = {}\np = softmax(z) = {}\n\n", z, p);

  // Autodiff: the seed's loss written out, and the fused one.
  const Tensor h_composed = hessian([&](const Tensor& x) { return -sum(t * log(softmax(x))); }, z);
  const Tensor h_fused =
      hessian([&](const Tensor& x) { return nn::cross_entropy_with_logits(x, t); }, z);

  // Closed form, in plain doubles.
  std::vector<double> closed(n * n);
  const auto pv = p.values();
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) closed[i * n + j] = (i == j ? pv[i] : 0.0) - pv[i] * pv[j];
  }

  print_matrix("autodiff hessian(-sum(t * log(softmax(z))), z):",
               {h_composed.values().begin(), h_composed.values().end()}, n);
  print_matrix("autodiff hessian(cross_entropy_with_logits(z, t), z):",
               {h_fused.values().begin(), h_fused.values().end()}, n);
  print_matrix("closed form diag(p) - p p^T:", closed, n);
  fmt::print("\nmax |autodiff - closed form|: composed {:.3g}, fused {:.3g}\n",
             max_difference(h_composed.values(), closed), max_difference(h_fused.values(), closed));

  // The target does not matter: a different class gives the same Hessian.
  const Tensor other = tensor({1.0, 0.0, 0.0, 0.0});
  const Tensor h_other =
      hessian([&](const Tensor& x) { return nn::cross_entropy_with_logits(x, other); }, z);
  fmt::print("with the true class 0 instead of 2: max |difference| {:.3g}\n",
             max_difference(h_other.values(), closed));
  // Every row sums to 0: adding a constant to every logit changes nothing.
  double worst_row = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    double row = 0.0;
    for (std::size_t j = 0; j < n; ++j) row += h_fused.values()[i * n + j];
    worst_row = std::max(worst_row, std::abs(row));
  }
  fmt::print("largest |row sum| (softmax is shift-invariant, so H 1 = 0): {:.3g}\n", worst_row);
  return 0;
}
