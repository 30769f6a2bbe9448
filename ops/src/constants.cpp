#include "tapegrad/ops/constants.hpp"

#include <cmath>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/error.hpp"

namespace tapegrad {

Tensor one_hot(const Tensor& labels, std::int64_t classes) {
  if (labels.rank() > 1) {
    throw ShapeError(
        fmt::format("one_hot: labels must be [n] class indices, got shape {}; flatten them with "
                    "reshape(labels, {{-1}})",
                    labels.shape()));
  }
  if (classes <= 0)
    throw ValueError(fmt::format("one_hot: classes must be positive, got {}", classes));
  const std::span<const double> lv = labels.values();
  const auto c = static_cast<std::size_t>(classes);
  // The shape first: it checks n * classes for overflow before anything is allocated or written.
  std::vector<std::int64_t> dims = labels.shape().dims();
  dims.push_back(classes);
  Shape shape(std::move(dims));
  Values values = allocate_values("one_hot", shape);
  for (std::size_t i = 0; i < lv.size(); ++i) {
    const double label = lv[i];
    if (!(label >= 0 && label < static_cast<double>(classes)) || label != std::floor(label)) {
      throw ValueError(fmt::format(
          "one_hot: label {} at position {} is not a class index in [0, {}) (labels shape {})",
          label, i, classes, labels.shape()));
    }
    values[i * c + static_cast<std::size_t>(label)] = 1.0;
  }
  return Tensor::from_values(std::move(values), std::move(shape));
}

Tensor positive_mask(const Tensor& x) {
  return Tensor::from_values(kernels::map(x, [](double v) { return v > 0.0 ? 1.0 : 0.0; }),
                             x.shape());
}

}  // namespace tapegrad
