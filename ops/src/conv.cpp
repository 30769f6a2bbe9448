// Convolutions through im2col + dgemm: conv2d, its two gradient ops (conv2d_input, conv2d_weight)
// and conv1d on top. Formulas and shapes in conv.hpp.
#include "tapegrad/ops/conv.hpp"

#include <algorithm>
#include <string_view>

#include <fmt/format.h>

#include "gemm.hpp"
#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// Everything a kernel needs, checked once. Signed, because padded coordinates go negative.
struct Geometry {
  std::int64_t n, c, h, w;  // input [N, C, H, W]
  std::int64_t o, kh, kw;   // weight [O, C/G, kh, kw]
  std::int64_t ho, wo;      // output [N, O, Ho, Wo]
  std::int64_t sh, sw, ph, pw, dh, dw, groups;
  std::int64_t cg() const { return c / groups; }
  std::int64_t og() const { return o / groups; }
  std::int64_t k() const { return cg() * kh * kw; }  // rows of a column matrix
  std::int64_t l() const { return ho * wo; }         // its columns: output positions
  // A 1x1 kernel with unit stride and no padding reads the input as its own column matrix.
  bool direct() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  Shape output_shape() const { return Shape{n, o, ho, wo}; }
};

Geometry geometry(std::string_view op, const Shape& x, const Shape& wt, const Conv2dOptions& opt) {
  if (x.rank() != 4) {
    throw ShapeError(
        fmt::format("{}: input must be 4-D [N, C, H, W], got {} dimensions ({} vs weight {})", op,
                    x.rank(), x, wt));
  }
  if (wt.rank() != 4) {
    throw ShapeError(
        fmt::format("{}: weight must be 4-D [O, C/groups, kh, kw], got {} dimensions "
                    "(input {} vs weight {})",
                    op, wt.rank(), x, wt));
  }
  const auto check_at_least = [&](std::string_view what, IntPair v, std::int64_t low) {
    if (v.h < low || v.w < low) {
      throw ValueError(fmt::format("{}: {} must be {}, got ({}, {}) (input {} vs weight {})", op,
                                   what, low == 1 ? "positive" : "non-negative", v.h, v.w, x, wt));
    }
  };
  check_at_least("stride", opt.stride, 1);
  check_at_least("dilation", opt.dilation, 1);
  check_at_least("padding", opt.padding, 0);
  if (opt.groups < 1) {
    throw ValueError(fmt::format("{}: groups must be positive, got {} (input {} vs weight {})", op,
                                 opt.groups, x, wt));
  }
  for (std::size_t i = 0; i < 4; ++i) {
    if (wt[i] < 1) {
      throw ShapeError(
          fmt::format("{}: weight has an empty dimension (input {} vs weight {})", op, x, wt));
    }
  }
  Geometry g{.n = x[0],
             .c = x[1],
             .h = x[2],
             .w = x[3],
             .o = wt[0],
             .kh = wt[2],
             .kw = wt[3],
             .ho = 0,
             .wo = 0,
             .sh = opt.stride.h,
             .sw = opt.stride.w,
             .ph = opt.padding.h,
             .pw = opt.padding.w,
             .dh = opt.dilation.h,
             .dw = opt.dilation.w,
             .groups = opt.groups};
  if (g.o % g.groups != 0 || g.c % g.groups != 0) {
    throw ValueError(
        fmt::format("{}: groups = {} must divide both the input channels ({}) and the "
                    "output channels ({}) (input {} vs weight {})",
                    op, g.groups, g.c, g.o, x, wt));
  }
  if (g.c != wt[1] * g.groups) {
    throw ShapeError(
        fmt::format("{}: input has {} channels, weight expects {} ({} per group x {} "
                    "groups) (input {} vs weight {})",
                    op, g.c, wt[1] * g.groups, wt[1], g.groups, x, wt));
  }
  const std::int64_t eh = g.dh * (g.kh - 1) + 1;  // the dilated kernel's extent
  const std::int64_t ew = g.dw * (g.kw - 1) + 1;
  if (g.h + 2 * g.ph < eh || g.w + 2 * g.pw < ew) {
    throw ShapeError(
        fmt::format("{}: kernel {}x{} (dilated) is larger than the padded input "
                    "{}x{} (input {} vs weight {})",
                    op, eh, ew, g.h + 2 * g.ph, g.w + 2 * g.pw, x, wt));
  }
  g.ho = (g.h + 2 * g.ph - eh) / g.sh + 1;
  g.wo = (g.w + 2 * g.pw - ew) / g.sw + 1;
  return g;
}

// A gradient op's grad_output must have the shape the convolution would have produced.
void check_grad_output(std::string_view op, const Geometry& g, const Tensor& grad_output) {
  if (grad_output.shape() != g.output_shape()) {
    throw ShapeError(
        fmt::format("{}: grad_output must have the convolution's output shape ({} vs {})", op,
                    grad_output.shape(), g.output_shape()));
  }
}

// The padded extent of one sample's group of channels: [C/G, H + 2 ph, W + 2 pw].
std::int64_t padded_h(const Geometry& g) {
  return g.h + 2 * g.ph;
}
std::int64_t padded_w(const Geometry& g) {
  return g.w + 2 * g.pw;
}
bool padded(const Geometry& g) {
  return g.ph != 0 || g.pw != 0;
}

// One sample's group of input channels x [C/G, H, W] -> col [C/G kh kw, Ho Wo]: row (c, a, e)
// holds, for every output position (i, j), the input element kernel tap (a, e) meets there. With
// padding, x is first copied into a zero-bordered `scratch` [C/G, H + 2 ph, W + 2 pw] (a few KB),
// so that every row of col is a plain copy with no bounds test: im2col is memory traffic, and
// branches in its short rows (Wo elements) cost as much as the copy.
// `scratch` holds cg hp wp doubles whose border the caller has zeroed (it is never written here).
// Rows of col are `ld` apart (ld >= Ho Wo: the column matrices of a chunk of samples side by side).
void im2col(const double* x, const Geometry& g, double* col, double* scratch, std::int64_t ld) {
  const std::int64_t hp = padded_h(g), wp = padded_w(g);
  const double* src = x;
  if (padded(g)) {
    for (std::int64_t c = 0; c < g.cg(); ++c) {
      for (std::int64_t r = 0; r < g.h; ++r) {
        const double* in = x + (c * g.h + r) * g.w;
        double* out = scratch + (c * hp + r + g.ph) * wp + g.pw;
        for (std::int64_t j = 0; j < g.w; ++j) out[j] = in[j];
      }
    }
    src = scratch;
  }
  for (std::int64_t c = 0; c < g.cg(); ++c) {
    for (std::int64_t a = 0; a < g.kh; ++a) {
      for (std::int64_t e = 0; e < g.kw; ++e) {
        double* row = col + ((c * g.kh + a) * g.kw + e) * ld;
        for (std::int64_t i = 0; i < g.ho; ++i) {
          const double* in = src + (c * hp + i * g.sh + a * g.dh) * wp + e * g.dw;
          double* out = row + i * g.wo;
          if (g.sw == 1) {
            for (std::int64_t j = 0; j < g.wo; ++j) out[j] = in[j];
          } else {
            for (std::int64_t j = 0; j < g.wo; ++j) out[j] = in[j * g.sw];
          }
        }
      }
    }
  }
}

// The adjoint of im2col: adds each column entry back onto the input element it was read from
// (into the zero-bordered scratch when padded, whose interior is then added onto x).
// `scratch` holds cg hp wp doubles (any values). Rows of col are `ld` apart, as in im2col.
void col2im(const double* col, const Geometry& g, double* x, double* scratch, std::int64_t ld) {
  const std::int64_t hp = padded_h(g), wp = padded_w(g);
  double* dst = x;
  if (padded(g)) {
    std::fill(scratch, scratch + g.cg() * hp * wp, 0.0);
    dst = scratch;
  }
  for (std::int64_t c = 0; c < g.cg(); ++c) {
    for (std::int64_t a = 0; a < g.kh; ++a) {
      for (std::int64_t e = 0; e < g.kw; ++e) {
        const double* row = col + ((c * g.kh + a) * g.kw + e) * ld;
        for (std::int64_t i = 0; i < g.ho; ++i) {
          const double* in = row + i * g.wo;
          double* out = dst + (c * hp + i * g.sh + a * g.dh) * wp + e * g.dw;
          if (g.sw == 1) {
            for (std::int64_t j = 0; j < g.wo; ++j) out[j] += in[j];
          } else {
            for (std::int64_t j = 0; j < g.wo; ++j) out[j * g.sw] += in[j];
          }
        }
      }
    }
  }
  if (!padded(g)) return;
  for (std::int64_t c = 0; c < g.cg(); ++c) {
    for (std::int64_t r = 0; r < g.h; ++r) {
      const double* in = scratch + (c * hp + r + g.ph) * wp + g.pw;
      double* out = x + (c * g.h + r) * g.w;
      for (std::int64_t j = 0; j < g.w; ++j) out[j] += in[j];
    }
  }
}

// Per-thread working memory of the lowering (the column matrix of a chunk of samples, and a
// chunk of outputs or output gradients laid out [O/G, chunk Ho Wo]), kept between calls and grown
// as needed: a training step makes the same convolutions every step, and allocating and zeroing
// ~1 MB per call showed in profiles. Never shrinks (memory stays flat over steps). No kernel calls
// another op while it holds these.
struct Workspace {
  double* col;
  double* stage;
  std::int64_t chunk;  // samples per product
};

// Samples whose column matrices go side by side into one product: as many as fit in 512 KB of
// column matrix (at least one), so that im2col's writes are still in cache when the product reads
// them; the threads share the chunks (for_each_chunk). One sample per chunk in the direct case.
std::int64_t samples_per_product(const Geometry& g) {
  if (g.direct() || g.n == 0) return 1;
  constexpr std::int64_t budget = std::int64_t{1} << 16;  // doubles
  return std::clamp<std::int64_t>(budget / std::max<std::int64_t>(1, g.k() * g.l()), 1, g.n);
}

Workspace workspace(const Geometry& g) {
  thread_local std::vector<double> col, stage;  // scratch, grown once per thread
  const std::int64_t chunk = samples_per_product(g);
  const auto need_col = static_cast<std::size_t>(g.direct() ? 0 : g.k() * g.l() * chunk);
  const auto need_stage = static_cast<std::size_t>(g.direct() ? 0 : g.og() * g.l() * chunk);
  if (col.size() < need_col) col.resize(need_col);
  if (stage.size() < need_stage) stage.resize(need_stage);
  return {col.data(), stage.data(), chunk};
}

// The calling thread's padded sample (cg hp wp doubles), zeroed: im2col's scratch, whose border
// it never writes. Per thread, because the threads of a split each lower their own samples.
double* padded_sample(const Geometry& g) {
  thread_local std::vector<double> pad;
  const auto need = static_cast<std::size_t>(padded(g) ? g.cg() * padded_h(g) * padded_w(g) : 0);
  if (pad.size() < need) pad.resize(need);
  std::fill(pad.begin(), pad.begin() + static_cast<std::ptrdiff_t>(need), 0.0);
  return pad.data();
}

// The lowering's copies (im2col, col2im, to_chunk, from_chunk) of one chunk: the threads share
// its samples, each sample's copy independent of the others, at least ~parallel_grain_cheap
// doubles per thread. Inside for_each_chunk's split (several chunks) they run inline; a single
// chunk (a small batch) still splits here.
std::size_t samples_per_thread(std::int64_t per_sample) {
  return parallel_grain_cheap / static_cast<std::size_t>(std::max<std::int64_t>(1, per_sample)) + 1;
}

// Calls copy(s, pad) for the samples s = 0 .. count - 1 of a chunk, shared by the threads; `pad`
// is the calling thread's zeroed padded sample (padded_sample) when with_pad, else null.
template <class Copy>
void for_each_sample(const Geometry& g, std::int64_t count, std::int64_t per_sample, bool with_pad,
                     Copy copy) {
  parallel_for(static_cast<std::size_t>(count), samples_per_thread(per_sample),
               [&](std::size_t s0, std::size_t s1) {
                 double* pad = with_pad ? padded_sample(g) : nullptr;
                 for (auto s = static_cast<std::int64_t>(s0); s < static_cast<std::int64_t>(s1);
                      ++s) {
                   copy(s, pad);
                 }
               });
}

// im2col of group q of samples n0 .. n0 + count into col [K, count Ho Wo].
void im2col_chunk(const Geometry& g, const double* x, std::int64_t q, std::int64_t n0,
                  std::int64_t count, double* col) {
  const std::int64_t ld = count * g.l();
  for_each_sample(g, count, g.k() * g.l(), true, [&](std::int64_t s, double* pad) {
    im2col(x + ((n0 + s) * g.c + q * g.cg()) * g.h * g.w, g, col + s * g.l(), pad, ld);
  });
}

// col2im of col [K, count Ho Wo] onto group q of samples n0 .. n0 + count of dx.
void col2im_chunk(const Geometry& g, const double* col, std::int64_t q, std::int64_t n0,
                  std::int64_t count, double* dx) {
  const std::int64_t ld = count * g.l();
  for_each_sample(g, count, g.k() * g.l(), true, [&](std::int64_t s, double* pad) {
    col2im(col + s * g.l(), g, dx + ((n0 + s) * g.c + q * g.cg()) * g.h * g.w, pad, ld);
  });
}

void dgemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
           std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
           std::int64_t ldc) {
  if (m == 0 || n == 0 || k == 0) return;
  kernels::gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

// Between a [N, O, Ho Wo] tensor's group q of samples n0 .. n0 + count and the chunk layout
// [O/G, count Ho Wo] of the products: to_chunk gathers, from_chunk scatters.
void to_chunk(const Geometry& g, const double* t, std::int64_t q, std::int64_t n0,
              std::int64_t count, double* stage) {
  const std::int64_t l = g.l(), ld = count * l;
  for_each_sample(g, count, g.og() * l, false, [&](std::int64_t s, double*) {
    for (std::int64_t o = 0; o < g.og(); ++o) {
      const double* from = t + ((n0 + s) * g.o + q * g.og() + o) * l;
      std::copy(from, from + l, stage + o * ld + s * l);
    }
  });
}
void from_chunk(const Geometry& g, const double* stage, std::int64_t q, std::int64_t n0,
                std::int64_t count, double* t) {
  const std::int64_t l = g.l(), ld = count * l;
  for_each_sample(g, count, g.og() * l, false, [&](std::int64_t s, double*) {
    for (std::int64_t o = 0; o < g.og(); ++o) {
      const double* from = stage + o * ld + s * l;
      std::copy(from, from + l, t + ((n0 + s) * g.o + q * g.og() + o) * l);
    }
  });
}

// Calls lower(n0, count) for every chunk of samples n0 .. n0 + count - 1, the chunks shared by
// the threads (each lowers its chunks with its own workspace). Chunk boundaries depend on the
// geometry alone, so every output element comes from the same product on any thread count.
template <class Lower>
void for_each_chunk(const Geometry& g, Lower lower) {
  const std::int64_t chunk = samples_per_product(g), chunks = (g.n + chunk - 1) / chunk;
  parallel_for(static_cast<std::size_t>(chunks), 1, [&](std::size_t c0, std::size_t c1) {
    for (auto c = static_cast<std::int64_t>(c0); c < static_cast<std::int64_t>(c1); ++c) {
      lower(c * chunk, std::min(chunk, g.n - c * chunk));
    }
  });
}

// y[n, group] [O/G, Ho Wo] = w[group] [O/G, K] col [K, Ho Wo], a chunk of samples per product
// (col [K, chunk Ho Wo]).
Values forward_kernel(const Geometry& g, const double* x, const double* w) {
  Values y(static_cast<std::size_t>(g.n * g.o * g.l()));
  for (std::int64_t q = 0; q < g.groups; ++q) {
    const double* wq = w + q * g.og() * g.k();
    for_each_chunk(g, [&](std::int64_t n0, std::int64_t count) {
      if (g.direct()) {  // one sample per chunk, its input is the column matrix
        dgemm(false, false, g.og(), g.l(), g.k(), wq, g.k(),
              x + (n0 * g.c + q * g.cg()) * g.h * g.w, g.l(), 0.0,
              y.data() + (n0 * g.o + q * g.og()) * g.l(), g.l());
        return;
      }
      const Workspace ws = workspace(g);
      const std::int64_t ld = count * g.l();
      im2col_chunk(g, x, q, n0, count, ws.col);
      dgemm(false, false, g.og(), ld, g.k(), wq, g.k(), ws.col, ld, 0.0, ws.stage, ld);
      from_chunk(g, ws.stage, q, n0, count, y.data());
    });
  }
  return y;
}

// col [K, Ho Wo] = w[group]^T [K, O/G] gy[n, group] [O/G, Ho Wo], then col2im onto dx[n, group];
// a chunk of samples per product.
Values input_kernel(const Geometry& g, const double* w, const double* gy) {
  Values dx(static_cast<std::size_t>(g.n * g.c * g.h * g.w), 0.0);
  for (std::int64_t q = 0; q < g.groups; ++q) {
    const double* wq = w + q * g.og() * g.k();
    for_each_chunk(g, [&](std::int64_t n0, std::int64_t count) {
      if (g.direct()) {
        dgemm(true, false, g.k(), g.l(), g.og(), wq, g.k(), gy + (n0 * g.o + q * g.og()) * g.l(),
              g.l(), 0.0, dx.data() + (n0 * g.c + q * g.cg()) * g.h * g.w, g.l());
        return;
      }
      const Workspace ws = workspace(g);
      const std::int64_t ld = count * g.l();
      to_chunk(g, gy, q, n0, count, ws.stage);
      dgemm(true, false, g.k(), ld, g.og(), wq, g.k(), ws.stage, ld, 0.0, ws.col, ld);
      col2im_chunk(g, ws.col, q, n0, count, dx.data());
    });
  }
  return dx;
}

// dw[group] [O/G, K] += gy[n, group] [O/G, Ho Wo] col^T [Ho Wo, K], summed over the batch; a
// chunk of samples per product, whose inner dimension is then chunk Ho Wo. The chunks are dealt
// into at most 8 runs of consecutive chunks (by the geometry alone): each run sums into its own
// partial dw, and the partials are added in run order, so the sum is the same on any thread count.
Values weight_kernel(const Geometry& g, const double* x, const double* gy) {
  const std::int64_t chunk = samples_per_product(g), chunks = (g.n + chunk - 1) / chunk;
  const std::int64_t runs = std::clamp<std::int64_t>(chunks, 1, 8), size = g.o * g.k();
  Values partial(static_cast<std::size_t>(runs * size), 0.0);
  parallel_for(static_cast<std::size_t>(runs), 1, [&](std::size_t r0, std::size_t r1) {
    for (auto r = static_cast<std::int64_t>(r0); r < static_cast<std::int64_t>(r1); ++r) {
      double* dw = partial.data() + r * size;
      for (std::int64_t c = chunks * r / runs; c < chunks * (r + 1) / runs; ++c) {
        const std::int64_t n0 = c * chunk, count = std::min(chunk, g.n - n0);
        for (std::int64_t q = 0; q < g.groups; ++q) {
          double* dwq = dw + q * g.og() * g.k();
          if (g.direct()) {
            dgemm(false, true, g.og(), g.k(), g.l(), gy + (n0 * g.o + q * g.og()) * g.l(), g.l(),
                  x + (n0 * g.c + q * g.cg()) * g.h * g.w, g.l(), 1.0, dwq, g.k());
            continue;
          }
          const Workspace ws = workspace(g);
          const std::int64_t ld = count * g.l();
          im2col_chunk(g, x, q, n0, count, ws.col);
          to_chunk(g, gy, q, n0, count, ws.stage);
          dgemm(false, true, g.og(), g.k(), ld, ws.stage, ld, ws.col, ld, 1.0, dwq, g.k());
        }
      }
    }
  });
  if (runs == 1) return partial;
  Values dw(static_cast<std::size_t>(size));
  for (std::int64_t i = 0; i < size; ++i) {
    double total = partial[static_cast<std::size_t>(i)];
    for (std::int64_t r = 1; r < runs; ++r)
      total += partial[static_cast<std::size_t>(r * size + i)];
    dw[static_cast<std::size_t>(i)] = total;
  }
  return dw;
}

// db[o] = sum over n, i, j of g[n, o, i, j], in one pass (two axis sums would make a pass each).
// Its rule spreads gg back over those axes.
Tensor conv2d_bias_grad(const Tensor& g) {
  const std::int64_t n = g.shape()[0], o = g.shape()[1], l = g.shape()[2] * g.shape()[3];
  Values db(static_cast<std::size_t>(o), 0.0);
  const double* gv = g.values().data();
  for (std::int64_t b = 0; b < n; ++b) {
    for (std::int64_t c = 0; c < o; ++c) {
      const double* row = gv + (b * o + c) * l;
      double total = 0.0;
      for (std::int64_t i = 0; i < l; ++i) total += row[i];
      db[static_cast<std::size_t>(c)] += total;
    }
  }
  return record({"conv2d_bias_grad", "dg = broadcast_to(gg as [1, O, 1, 1], g.shape)"}, Shape{o},
                std::move(db), {g}, [o](const Tensor& gg, const Tensor&, Inputs in) {
                  return Grads{broadcast_to(reshape(gg, {1, o, 1, 1}), in[0].shape())};
                });
}

Tensor conv2d_no_bias(const Tensor& x, const Tensor& weight, Conv2dOptions opt,
                      std::source_location where) {
  const Geometry g = geometry("conv2d", x.shape(), weight.shape(), opt);
  return record(
      {"conv2d", "dx = conv2d_input(x.shape, w, g), dw = conv2d_weight(x, w.shape, g)"},
      g.output_shape(), forward_kernel(g, x.values().data(), weight.values().data()), {x, weight},
      [opt](const Tensor& gy, const Tensor&, Inputs in) {
        Tensor dx, dw;
        if (kernels::needs_grad(in, 0)) dx = conv2d_input(in[0].shape(), in[1], gy, opt);
        if (kernels::needs_grad(in, 1)) dw = conv2d_weight(in[0], in[1].shape(), gy, opt);
        return Grads{dx, dw};
      },
      where);
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv2dOptions options,
              std::source_location where) {
  if (x.rank() == 3) {  // unbatched [C, H, W], as PyTorch: a batch of one
    const auto& d = x.shape().dims();
    const Tensor y = conv2d(reshape(x, {1, d[0], d[1], d[2]}, where), weight, bias, options, where);
    const auto& e = y.shape().dims();
    return reshape(y, {e[1], e[2], e[3]}, where);
  }
  const Geometry g = geometry("conv2d", x.shape(), weight.shape(), options);
  if (!bias.defined()) return conv2d_no_bias(x, weight, options, where);
  if (bias.shape() != Shape{g.o}) {
    throw ShapeError(
        fmt::format("conv2d: bias must be [{}], one per output channel ({} vs weight {})", g.o,
                    bias.shape(), weight.shape()));
  }
  Values y = forward_kernel(g, x.values().data(), weight.values().data());
  const std::span<const double> bv = bias.values();
  for (std::int64_t n = 0; n < g.n; ++n) {
    for (std::int64_t o = 0; o < g.o; ++o) {
      double* row = y.data() + (n * g.o + o) * g.l();
      for (std::int64_t i = 0; i < g.l(); ++i) row[i] += bv[static_cast<std::size_t>(o)];
    }
  }
  return record(
      {"conv2d",
       "dx = conv2d_input(x.shape, w, g), dw = conv2d_weight(x, w.shape, g), db = sum_nij g"},
      g.output_shape(), std::move(y), {x, weight, bias},
      [options](const Tensor& gy, const Tensor&, Inputs in) {
        Tensor dx, dw, db;
        if (kernels::needs_grad(in, 0)) dx = conv2d_input(in[0].shape(), in[1], gy, options);
        if (kernels::needs_grad(in, 1)) dw = conv2d_weight(in[0], in[1].shape(), gy, options);
        if (kernels::needs_grad(in, 2)) db = conv2d_bias_grad(gy);
        return Grads{dx, dw, db};
      },
      where);
}

Tensor conv2d_input(const Shape& input_shape, const Tensor& weight, const Tensor& grad_output,
                    Conv2dOptions options, std::source_location where) {
  const Geometry g = geometry("conv2d_input", input_shape, weight.shape(), options);
  check_grad_output("conv2d_input", g, grad_output);
  return record(
      {"conv2d_input", "dw = conv2d_weight(gg, w.shape, g), dg = conv2d(gg, w)"}, input_shape,
      input_kernel(g, weight.values().data(), grad_output.values().data()), {weight, grad_output},
      [options](const Tensor& gg, const Tensor&, Inputs in) {
        Tensor dw, dg;
        if (kernels::needs_grad(in, 0)) dw = conv2d_weight(gg, in[0].shape(), in[1], options);
        if (kernels::needs_grad(in, 1)) dg = conv2d(gg, in[0], Tensor(), options);
        return Grads{dw, dg};
      },
      where);
}

Tensor conv2d_weight(const Tensor& x, const Shape& weight_shape, const Tensor& grad_output,
                     Conv2dOptions options, std::source_location where) {
  const Geometry g = geometry("conv2d_weight", x.shape(), weight_shape, options);
  check_grad_output("conv2d_weight", g, grad_output);
  return record(
      {"conv2d_weight", "dx = conv2d_input(x.shape, gw, g), dg = conv2d(x, gw)"}, weight_shape,
      weight_kernel(g, x.values().data(), grad_output.values().data()), {x, grad_output},
      [options](const Tensor& gw, const Tensor&, Inputs in) {
        Tensor dx, dg;
        if (kernels::needs_grad(in, 0)) dx = conv2d_input(in[0].shape(), gw, in[1], options);
        if (kernels::needs_grad(in, 1)) dg = conv2d(in[0], gw, Tensor(), options);
        return Grads{dx, dg};
      },
      where);
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv1dOptions options,
              std::source_location where) {
  if (x.rank() == 2) {  // unbatched [C, L]
    const auto& d = x.shape().dims();
    const Tensor y = conv1d(reshape(x, {1, d[0], d[1]}, where), weight, bias, options, where);
    const auto& e = y.shape().dims();
    return reshape(y, {e[1], e[2]}, where);
  }
  if (x.rank() != 3 || weight.rank() != 3) {
    throw ShapeError(
        fmt::format("conv1d: input must be 3-D [N, C, L] and weight 3-D [O, C/groups, "
                    "k] (input {} vs weight {})",
                    x.shape(), weight.shape()));
  }
  const auto& xd = x.shape().dims();
  const auto& wd = weight.shape().dims();
  // The 2-D machinery on a height of 1. Errors name conv2d's 4-D shapes; the 1-D ones say which.
  const Conv2dOptions o2{.stride = {1, options.stride},
                         .padding = {0, options.padding},
                         .dilation = {1, options.dilation},
                         .groups = options.groups};
  // Rethrown as conv1d's own error, naming the 1-D shapes (the message from conv2d names 4-D ones).
  const auto as_conv1d = [&](const std::exception& e) {
    std::string_view what = e.what();
    if (what.starts_with("conv2d: ")) what.remove_prefix(8);
    return fmt::format("conv1d: {} (1-D input {} vs weight {})", what, x.shape(), weight.shape());
  };
  Tensor y;
  try {
    y = conv2d(reshape(x, {xd[0], xd[1], 1, xd[2]}, where),
               reshape(weight, {wd[0], wd[1], 1, wd[2]}, where), bias, o2, where);
  } catch (const ShapeError& e) {
    throw ShapeError(as_conv1d(e));
  } catch (const ValueError& e) {
    throw ValueError(as_conv1d(e));
  }
  const auto& yd = y.shape().dims();
  return reshape(y, {yd[0], yd[1], yd[3]}, where);
}

}  // namespace tapegrad
