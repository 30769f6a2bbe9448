#include "tapegrad/core/tensor.hpp"

#include <algorithm>
#include <iterator>
#include <new>
#include <utility>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

Tensor Tensor::from_values(Values values, Shape shape) {
  detail::check_fill(values.size(), shape);
  return detail::make_leaf(std::move(values), std::move(shape));
}

namespace detail {
static_assert(TensorImpl::inline_values >= Values::small_capacity,
              "a tensor too large to be inline must come with a heap buffer to take over");

void swap_values(Tensor& leaf, Values& values) noexcept {
  TensorImpl& impl = leaf.impl();
  HeapValues* heap = impl.heap_values();
  if (heap != nullptr && !values.is_small() && values.size() == impl.numel()) {
    std::size_t capacity = 0;
    double* buffer = values.release_heap(capacity);
    values.adopt_heap(heap->data, impl.numel(), heap->capacity);
    heap->data = buffer;
    heap->capacity = capacity;
  } else {
    std::swap_ranges(values.begin(), values.end(), impl.data());
  }
}

void throw_fill_error(std::size_t count, const Shape& shape) {
  throw ShapeError(fmt::format("from_values: {} values do not fill shape {} ({} elements)", count,
                               shape, shape.numel()));
}

void release_shared(TensorImpl* impl) noexcept {
  if (std::atomic_ref<std::uint32_t>(impl->count).fetch_sub(2, std::memory_order_acq_rel) == 2) {
    destroy(impl);
  }
}

void destroy_slow(TensorImpl* impl) noexcept {
  if (impl->is_leaf() && impl->leaf.grad != nullptr) release(impl->leaf.grad);
  if (HeapValues* heap = impl->heap_values()) {
    give_value_buffer(heap->data, heap->capacity * sizeof(double));
  }
  delete_impl(impl);
}
}  // namespace detail

std::string_view Tensor::op() const {
  const detail::OpDescriptor* op = impl().op;
  return op == nullptr ? std::string_view() : std::string_view(op->name);
}

void Tensor::throw_undefined() {
  throw AutogradError(
      "Tensor: this tensor is undefined (a default-constructed Tensor, or the grad() of a leaf "
      "no backward has reached yet); check .defined() first (zero_grad() also makes grad() "
      "undefined)");
}

std::span<double> Tensor::mutable_values() {
  if (!is_leaf()) {
    throw AutogradError(fmt::format(
        "mutable_values: this tensor is the result of '{}' recorded on a tape ({}); its value is "
        "saved for backward. Write to a leaf, or to a copy made with detach()",
        op(), shape()));
  }
  return {impl().data(), numel()};
}

double Tensor::item() const {
  if (numel() != 1) {
    throw ValueError(fmt::format(
        "item: needs a tensor with one element, got shape {} ({} elements)", shape(), numel()));
  }
  return impl().data()[0];
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  const Shape& s = shape();
  if (index.size() != s.rank()) {
    throw ValueError(fmt::format("at: index has {} coordinates for a tensor of shape {} (needs {})",
                                 index.size(), s, s.rank()));
  }
  std::size_t flat = 0;
  std::size_t axis = 0;
  for (std::int64_t i : index) {
    if (i < 0 || i >= s[axis]) {
      throw ValueError(
          fmt::format("at: index [{}] is out of range for shape {}", fmt::join(index, ", "), s));
    }
    flat = flat * static_cast<std::size_t>(s[axis]) + static_cast<std::size_t>(i);
    ++axis;
  }
  return impl().data()[flat];
}

Tensor& Tensor::requires_grad_(bool enabled) {
  if (!is_leaf()) {
    throw AutogradError(fmt::format(
        "requires_grad_: only leaves can be marked; this tensor is the result of '{}' ({}). "
        "Use detach().requires_grad_() to start a new leaf from its value",
        op(), shape()));
  }
  detail::TensorImpl& i = impl();
  i.flags = enabled ? (i.flags | detail::TensorImpl::requires_grad_flag)
                    : (i.flags & ~detail::TensorImpl::requires_grad_flag);
  return *this;
}

Tensor Tensor::grad() const {
  if (!is_leaf()) {
    throw AutogradError(fmt::format(
        "grad: this tensor is the result of '{}' ({}), not a leaf; only leaves accumulate "
        "gradients. Use tapegrad::grad(output, {{tensor}}) to get the gradient of an "
        "intermediate",
        op(), shape()));
  }
  detail::TensorImpl* g = impl().leaf.grad;
  if (g == nullptr) return Tensor();
  detail::retain(g);
  return adopt(g);
}

void Tensor::set_grad(const Tensor& grad) {
  if (!is_leaf()) {
    throw AutogradError(fmt::format(
        "set_grad: this tensor is the result of '{}' ({}), not a leaf; only leaves hold a grad()",
        op(), shape()));
  }
  if (grad.defined() && grad.shape() != shape()) {
    throw ShapeError(fmt::format("set_grad: gradient shape differs from the tensor's ({} vs {})",
                                 grad.shape(), shape()));
  }
  Tensor keep = grad;  // a counted handle, handed to the leaf below
  detail::TensorImpl* old = std::exchange(impl().leaf.grad, keep.impl_ptr());
  keep.impl_ = old;  // the old gradient's handle, released with `keep`
}

void Tensor::zero_grad() {
  detail::TensorImpl& i = impl();
  if (!i.is_leaf() || i.leaf.grad == nullptr) return;
  detail::release(std::exchange(i.leaf.grad, nullptr));
}

void Tensor::backward(BackwardOptions options) const {
  tapegrad::backward(*this, Tensor(), options);
}

void Tensor::backward(const Tensor& seed, BackwardOptions options) const {
  tapegrad::backward(*this, seed, options);
}

Tensor Tensor::detach() const {
  const std::span<const double> v = values();
  return Tensor::from_values(Values(v.begin(), v.end()), shape());
}

void print_trace(std::string_view line) {
  fmt::print("{}\n", line);
}

namespace {
[[noreturn]] void throw_allocation_error(std::string_view op, const Shape& shape) {
  // Shape already bounds numel() by what a vector can hold, so only memory can run out here.
  const double bytes = static_cast<double>(shape.bytes());
  constexpr const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  std::size_t unit = 0;
  double amount = bytes;
  while (amount >= 1024.0 && unit + 1 < std::size(units)) {
    amount /= 1024.0;
    ++unit;
  }
  throw AllocationError(
      fmt::format("{}: out of memory allocating {} bytes ({:.3g} {}) for a tensor of shape {}", op,
                  shape.bytes(), amount, units[unit], shape));
}
}  // namespace

Values allocate_values(std::string_view op, const Shape& shape, double fill) {
  try {
    return Values(shape.numel(), fill);
  } catch (const std::bad_alloc&) {
    throw_allocation_error(op, shape);
  }
}

Tensor zeros(const Shape& shape) {
  return Tensor::from_values(allocate_values("zeros", shape, 0.0), shape);
}
Tensor ones(const Shape& shape) {
  return Tensor::from_values(allocate_values("ones", shape, 1.0), shape);
}
Tensor full(const Shape& shape, double value) {
  return Tensor::from_values(allocate_values("full", shape, value), shape);
}
Tensor scalar(double value) {
  return Tensor::from_values({value}, Shape{});
}
Tensor from_values(Values values, const Shape& shape) {
  return Tensor::from_values(std::move(values), shape);
}
Tensor tensor(std::initializer_list<Element> values) {
  Values numbers;
  numbers.reserve(values.size());
  for (const Element& e : values) numbers.push_back(e.value);
  return Tensor::from_values(std::move(numbers), Shape{static_cast<std::int64_t>(values.size())});
}
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows) {
  const std::size_t columns = rows.size() == 0 ? 0 : rows.begin()->size();
  Values values;
  values.reserve(rows.size() * columns);
  std::size_t row_index = 0;
  for (const auto& row : rows) {
    if (row.size() != columns) {
      throw ShapeError(fmt::format("tensor: row {} has {} values, row 0 has {} (ragged rows)",
                                   row_index, row.size(), columns));
    }
    values.insert(values.end(), row.begin(), row.end());
    ++row_index;
  }
  return Tensor::from_values(std::move(values), Shape{static_cast<std::int64_t>(rows.size()),
                                                      static_cast<std::int64_t>(columns)});
}
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape());
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape());
}

namespace {
// Writes the values of dimension `axis` starting at `offset`, nested in brackets. Rows longer than
// `edge_items` * 2 show their ends only, so a 784-wide row stays one readable line.
void format_values(fmt::memory_buffer& out, const detail::TensorImpl& t, std::size_t axis,
                   std::size_t offset, const std::vector<std::size_t>& strides) {
  constexpr std::int64_t edge_items = 3;
  const std::int64_t n = t.shape[axis];
  out.push_back('[');
  for (std::int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge_items && i == edge_items) {
      fmt::format_to(std::back_inserter(out), "..., ");
      i = n - edge_items;
    }
    const std::size_t at = offset + static_cast<std::size_t>(i) * strides[axis];
    if (axis + 1 == t.shape.rank()) {
      fmt::format_to(std::back_inserter(out), "{:.6g}", t.data()[at]);
    } else {
      format_values(out, t, axis + 1, at, strides);
    }
    if (i + 1 < n) fmt::format_to(std::back_inserter(out), ", ");
  }
  out.push_back(']');
}
}  // namespace

}  // namespace tapegrad

fmt::format_context::iterator fmt::formatter<tapegrad::Tensor>::format(
    const tapegrad::Tensor& tensor, format_context& ctx) const {
  if (!tensor.defined()) return fmt::formatter<std::string_view>::format("tensor(undefined)", ctx);
  const auto& t = tensor.impl();
  fmt::memory_buffer out;
  fmt::format_to(std::back_inserter(out), "tensor(");
  if (t.shape.rank() == 0) {
    fmt::format_to(std::back_inserter(out), "{:.6g}", t.data()[0]);
  } else {
    tapegrad::format_values(out, t, 0, 0, t.shape.strides());
  }
  fmt::format_to(std::back_inserter(out), ", shape={}", t.shape);
  if (!t.is_leaf()) {
    fmt::format_to(std::back_inserter(out), ", op={}", tensor.op());
  } else if (t.requires_grad()) {
    fmt::format_to(std::back_inserter(out), ", requires_grad");
  }
  out.push_back(')');
  return fmt::formatter<std::string_view>::format(std::string_view(out.data(), out.size()), ctx);
}
