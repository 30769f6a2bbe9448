// Pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d and their backward ops, each with a rule.
// Formulas and shapes in pool.hpp. The window arithmetic mirrors PyTorch's CPU kernels
// (aten/src/ATen/native/cpu/MaxPoolKernel.cpp, AvgPoolKernel.cpp) so edges and ties agree.
#include "tapegrad/ops/pool.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/parallel.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// The windows along one axis: output position i reads input rows start[i], start[i] + step, ...
// below end[i] (already clipped to the input), and an average divides by count[i].
struct Axis {
  std::vector<std::int64_t> start, end, count;
  std::int64_t step = 1;
  std::int64_t size() const { return static_cast<std::int64_t>(start.size()); }
};

// The windows of a pooling: planes = N C, each [h, w] -> [rows.size(), cols.size()].
struct Windows {
  std::int64_t planes = 0, h = 0, w = 0;
  Axis rows, cols;
  Shape output_shape(const Shape& x) const { return Shape{x[0], x[1], rows.size(), cols.size()}; }
};

struct PoolArgs {
  IntPair kernel, stride, padding, dilation;
  bool ceil_mode;
  bool count_include_pad;
};

// One axis of a kernel pooling, as PyTorch's pooling_output_shape and its CPU kernels.
Axis kernel_axis(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d,
                 bool ceil_mode) {
  const std::int64_t span = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  std::int64_t out = span / s + 1;  // span >= 0 here: the kernel fits the padded input
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  Axis axis;
  axis.step = d;
  for (std::int64_t i = 0; i < out; ++i) {
    std::int64_t a = i * s - p;
    std::int64_t b = std::min(a + (k - 1) * d + 1, in);
    // An average's divisor counts the padding (up to its end), never what lies beyond.
    axis.count.push_back(std::min(a + k, in + p) - a);
    while (a < 0) a += d;
    axis.start.push_back(a);
    axis.end.push_back(std::max(a, b));
  }
  return axis;
}

Windows kernel_windows(std::string_view op, const Tensor& x, const PoolArgs& a) {
  const Shape& s = x.shape();
  if (s.rank() != 4) {
    throw ShapeError(
        fmt::format("{}: input must be 4-D [N, C, H, W] or 3-D [C, H, W], got {} dimensions "
                    "(input {} vs kernel [{}, {}])",
                    op, s.rank(), s, a.kernel.h, a.kernel.w));
  }
  const auto check = [&](std::string_view what, IntPair v, std::int64_t low) {
    if (v.h < low || v.w < low) {
      throw ValueError(fmt::format("{}: {} must be {}, got [{}, {}] (input {} vs kernel [{}, {}])",
                                   op, what, low == 1 ? "positive" : "non-negative", v.h, v.w, s,
                                   a.kernel.h, a.kernel.w));
    }
  };
  check("kernel_size", a.kernel, 1);
  check("stride", a.stride, 1);
  check("dilation", a.dilation, 1);
  check("padding", a.padding, 0);
  if (a.padding.h > a.kernel.h / 2 || a.padding.w > a.kernel.w / 2) {
    throw ValueError(
        fmt::format("{}: padding [{}, {}] must be at most half the kernel [{}, {}] "
                    "(input {})",
                    op, a.padding.h, a.padding.w, a.kernel.h, a.kernel.w, s));
  }
  const std::int64_t eh = a.dilation.h * (a.kernel.h - 1) + 1;
  const std::int64_t ew = a.dilation.w * (a.kernel.w - 1) + 1;
  if (s[2] + 2 * a.padding.h < eh || s[3] + 2 * a.padding.w < ew) {
    throw ShapeError(fmt::format(
        "{}: kernel {}x{} (dilated) is larger than the padded input "
        "{}x{} (input {} vs kernel [{}, {}])",
        op, eh, ew, s[2] + 2 * a.padding.h, s[3] + 2 * a.padding.w, s, a.kernel.h, a.kernel.w));
  }
  Windows win{s[0] * s[1], s[2], s[3], {}, {}};
  win.rows = kernel_axis(s[2], a.kernel.h, a.stride.h, a.padding.h, a.dilation.h, a.ceil_mode);
  win.cols = kernel_axis(s[3], a.kernel.w, a.stride.w, a.padding.w, a.dilation.w, a.ceil_mode);
  if (!a.count_include_pad) {
    for (Axis* axis : {&win.rows, &win.cols}) {
      for (std::int64_t i = 0; i < axis->size(); ++i)
        axis->count[i] = axis->end[i] - axis->start[i];
    }
  }
  return win;
}

// x [planes, h, w] -> y [planes, rows, cols] = window sums / (count_row count_col). A window
// with no input element (possible only at a ceil_mode edge) gives 0, as PyTorch.
Values window_mean_kernel(const Windows& win, std::span<const double> x) {
  const std::int64_t ho = win.rows.size(), wo = win.cols.size();
  Values y(static_cast<std::size_t>(win.planes * ho * wo), 0.0);
  for (std::int64_t p = 0; p < win.planes; ++p) {
    const double* in = x.data() + p * win.h * win.w;
    double* out = y.data() + p * ho * wo;
    for (std::int64_t i = 0; i < ho; ++i) {
      for (std::int64_t j = 0; j < wo; ++j) {
        double total = 0.0;
        for (std::int64_t r = win.rows.start[i]; r < win.rows.end[i]; ++r) {
          for (std::int64_t c = win.cols.start[j]; c < win.cols.end[j]; ++c) {
            total += in[r * win.w + c];
          }
        }
        const bool empty =
            win.rows.start[i] >= win.rows.end[i] || win.cols.start[j] >= win.cols.end[j];
        out[i * wo + j] =
            empty ? 0.0 : total / static_cast<double>(win.rows.count[i] * win.cols.count[j]);
      }
    }
  }
  return y;
}

// The adjoint: g [planes, rows, cols] -> dx [planes, h, w], g / divisor added over each window.
Values window_mean_adjoint(const Windows& win, std::span<const double> g) {
  const std::int64_t ho = win.rows.size(), wo = win.cols.size();
  Values dx(static_cast<std::size_t>(win.planes * win.h * win.w), 0.0);
  for (std::int64_t p = 0; p < win.planes; ++p) {
    const double* in = g.data() + p * ho * wo;
    double* out = dx.data() + p * win.h * win.w;
    for (std::int64_t i = 0; i < ho; ++i) {
      for (std::int64_t j = 0; j < wo; ++j) {
        const double v =
            in[i * wo + j] / static_cast<double>(win.rows.count[i] * win.cols.count[j]);
        for (std::int64_t r = win.rows.start[i]; r < win.rows.end[i]; ++r) {
          for (std::int64_t c = win.cols.start[j]; c < win.cols.end[j]; ++c) {
            out[r * win.w + c] += v;
          }
        }
      }
    }
  }
  return dx;
}

// The names a window mean records under: the forward op and its adjoint.
struct MeanNames {
  const char* forward;
  const char* backward;
};

Tensor window_mean_backward(const Tensor& g, std::shared_ptr<const Windows> win,
                            const Shape& x_shape, MeanNames names);

Tensor window_mean(const Tensor& x, std::shared_ptr<const Windows> win, MeanNames names,
                   std::source_location where) {
  return record(
      {names.forward, "dx = g / divisor spread over each window"}, win->output_shape(x.shape()),
      window_mean_kernel(*win, x.values()), {x},
      [win, names](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{window_mean_backward(g, win, in[0].shape(), names)};
      },
      where);
}

Tensor window_mean_backward(const Tensor& g, std::shared_ptr<const Windows> win,
                            const Shape& x_shape, MeanNames names) {
  return record({names.backward, "dg = the forward pooling of gg (its adjoint)"}, x_shape,
                window_mean_adjoint(*win, g.values()), {g},
                [win, names](const Tensor& gg, const Tensor&, Inputs) {
                  return Grads{window_mean(gg, win, names, std::source_location::current())};
                });
}

using Indices = std::shared_ptr<const std::vector<std::size_t>>;

// dx = zeros(x_shape); dx[idx[k]] += g[k]. Its rule gathers; the gather's rule scatters again.
Tensor max_pool2d_gather(const Tensor& gg, Indices idx, const Shape& g_shape);

Tensor max_pool2d_backward(const Tensor& g, Indices idx, const Shape& x_shape) {
  Values dx(x_shape.numel(), 0.0);
  const std::span<const double> gv = g.values();
  // Every argmax lies in its own plane (g [N, C, Ho, Wo]): threads share whole planes, so no two
  // threads add into one element and each element's additions keep their order.
  const std::size_t per_plane =
      g.rank() == 4 ? static_cast<std::size_t>(g.shape()[2] * g.shape()[3]) : gv.size();
  const std::size_t planes = per_plane == 0 ? 0 : gv.size() / per_plane;
  parallel_for(planes, parallel_grain_cheap / std::max<std::size_t>(1, per_plane) + 1,
               [&](std::size_t p0, std::size_t p1) {
                 for (std::size_t k = p0 * per_plane; k < p1 * per_plane; ++k) {
                   dx[(*idx)[k]] += gv[k];
                 }
               });
  return record({"max_pool2d_backward", "dg = gg gathered at the argmaxes"}, x_shape, std::move(dx),
                {g}, [idx](const Tensor& gg, const Tensor&, Inputs in) {
                  return Grads{max_pool2d_gather(gg, idx, in[0].shape())};
                });
}

// y[k] = gg[idx[k]]
Tensor max_pool2d_gather(const Tensor& gg, Indices idx, const Shape& g_shape) {
  Values y(idx->size());
  const std::span<const double> v = gg.values();
  for (std::size_t k = 0; k < y.size(); ++k) y[k] = v[(*idx)[k]];
  return record({"max_pool2d_gather", "dgg = g scatter-added to the argmaxes"}, g_shape,
                std::move(y), {gg}, [idx](const Tensor& g, const Tensor&, Inputs in) {
                  return Grads{max_pool2d_backward(g, idx, in[0].shape())};
                });
}

// An unbatched [C, H, W] input runs as a batch of one.
template <class Op>
Tensor unbatched(const Tensor& x, std::source_location where, Op op) {
  if (x.rank() != 3) return op(x);
  const auto& d = x.shape().dims();
  const Tensor y = op(reshape(x, {1, d[0], d[1], d[2]}, where));
  const auto& e = y.shape().dims();
  return reshape(y, {e[1], e[2], e[3]}, where);
}
}  // namespace

Tensor max_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride,
                  IntPair padding, IntPair dilation, bool ceil_mode, std::source_location where) {
  return unbatched(x, where, [&](const Tensor& x4) {
    const Windows win = kernel_windows(
        "max_pool2d", x4,
        {kernel_size, stride.value_or(kernel_size), padding, dilation, ceil_mode, true});
    const std::int64_t ho = win.rows.size(), wo = win.cols.size();
    Values y(static_cast<std::size_t>(win.planes * ho * wo));
    auto idx = std::make_shared<std::vector<std::size_t>>(y.size());
    const std::span<const double> xv = x4.values();
    // Planes are independent: threads share them.
    const auto per_thread =
        parallel_grain_cheap / static_cast<std::size_t>(std::max<std::int64_t>(1, win.h * win.w)) +
        1;
    parallel_for(
        static_cast<std::size_t>(win.planes), per_thread, [&](std::size_t p0, std::size_t p1) {
          for (auto p = static_cast<std::int64_t>(p0); p < static_cast<std::int64_t>(p1); ++p) {
            const std::int64_t base = p * win.h * win.w;
            for (std::int64_t i = 0; i < ho; ++i) {
              for (std::int64_t j = 0; j < wo; ++j) {
                // PyTorch's scan: the first strictly larger value wins, a NaN always wins.
                // (Clamped so that a window holding no element, if one could arise, still points
                // inside.)
                std::int64_t best = std::min(win.rows.start[i], win.h - 1) * win.w +
                                    std::min(win.cols.start[j], win.w - 1);
                double m = -std::numeric_limits<double>::infinity();
                for (std::int64_t r = win.rows.start[i]; r < win.rows.end[i]; r += win.rows.step) {
                  for (std::int64_t c = win.cols.start[j]; c < win.cols.end[j];
                       c += win.cols.step) {
                    const double v = xv[static_cast<std::size_t>(base + r * win.w + c)];
                    if (v > m || std::isnan(v)) {
                      m = v;
                      best = r * win.w + c;
                    }
                  }
                }
                const auto k = static_cast<std::size_t>((p * ho + i) * wo + j);
                y[k] = m;
                (*idx)[k] = static_cast<std::size_t>(base + best);
              }
            }
          }
        });
    Indices argmax = std::move(idx);
    return record(
        {"max_pool2d", "dx = g scatter-added to each window's first argmax"},
        win.output_shape(x4.shape()), std::move(y), {x4},
        [argmax](const Tensor& g, const Tensor&, Inputs in) {
          return Grads{max_pool2d_backward(g, argmax, in[0].shape())};
        },
        where);
  });
}

Tensor avg_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride,
                  IntPair padding, bool ceil_mode, bool count_include_pad,
                  std::source_location where) {
  return unbatched(x, where, [&](const Tensor& x4) {
    auto win = std::make_shared<const Windows>(kernel_windows(
        "avg_pool2d", x4,
        {kernel_size, stride.value_or(kernel_size), padding, 1, ceil_mode, count_include_pad}));
    return window_mean(x4, std::move(win), {"avg_pool2d", "avg_pool2d_backward"}, where);
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, IntPair output_size, std::source_location where) {
  return unbatched(x, where, [&](const Tensor& x4) {
    const Shape& s = x4.shape();
    if (s.rank() != 4) {
      throw ShapeError(
          fmt::format("adaptive_avg_pool2d: input must be 4-D [N, C, H, W] or 3-D "
                      "[C, H, W], got {} dimensions (input {} vs output size [{}, {}])",
                      s.rank(), s, output_size.h, output_size.w));
    }
    if (output_size.h < 1 || output_size.w < 1 || s[2] < 1 || s[3] < 1) {
      throw ValueError(
          fmt::format("adaptive_avg_pool2d: output size and input height and width "
                      "must be positive (input {} vs output size [{}, {}])",
                      s, output_size.h, output_size.w));
    }
    // PyTorch's start_index / end_index: floor(i in / out) and ceil((i + 1) in / out).
    const auto axis = [](std::int64_t in, std::int64_t out) {
      Axis a;
      for (std::int64_t i = 0; i < out; ++i) {
        a.start.push_back(i * in / out);
        a.end.push_back(((i + 1) * in + out - 1) / out);
        a.count.push_back(a.end.back() - a.start.back());
      }
      return a;
    };
    auto win = std::make_shared<const Windows>(
        Windows{s[0] * s[1], s[2], s[3], axis(s[2], output_size.h), axis(s[3], output_size.w)});
    return window_mean(x4, std::move(win), {"adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"},
                       where);
  });
}

}  // namespace tapegrad
