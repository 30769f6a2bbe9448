#pragma once
// Values: a tensor's doubles, a std::vector<double> in interface with two differences:
//   - up to small_capacity (4) elements live inside the object: a scalar op's result needs no
//     allocation at all (W1's chain makes millions of them);
//   - `Values v(n)` and `v.resize(n)` leave new elements unset (as new double[n]): a kernel that
//     writes every element does not pay for zero-filling first. Write `Values v(n, 0.0)` for zeros.
// Larger buffers come from tapegrad's per-thread buffer cache (detail::take_value_buffer), and a
// tensor takes over a Values' buffer without copying it. Kernels allocate with allocate_values.
#include <algorithm>
#include <cstddef>
#include <cstdint>  // PTRDIFF_MAX
#include <initializer_list>
#include <iterator>
#include <new>
#include <utility>

namespace tapegrad {

namespace detail {
// Under AddressSanitizer tapegrad's per-thread caches of blocks and buffers are bypassed: every
// block is a fresh heap block, so a use after free is still reported.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool recycle_blocks = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool recycle_blocks = false;
#else
inline constexpr bool recycle_blocks = true;
#endif
#else
inline constexpr bool recycle_blocks = true;
#endif

// Copies n <= 4 doubles with plain moves (a loop of unknown length becomes a call to memcpy).
inline void copy_small(const double* in, std::size_t n, double* out) noexcept {
  switch (n) {
    case 4:
      out[3] = in[3];
      [[fallthrough]];
    case 3:
      out[2] = in[2];
      [[fallthrough]];
    case 2:
      out[1] = in[1];
      [[fallthrough]];
    case 1:
      out[0] = in[0];
      [[fallthrough]];
    default:
      break;
  }
}

// Where tensor values live. A training step frees what the step before allocated, in the same
// sizes: buffers of up to 256 bytes (small vectors) come from per-thread free lists, buffers of
// 64 KiB and more from a per-thread cache of freed buffers of the same size (at most 256 MiB held
// per thread), so a step neither calls malloc for them nor page-faults its large buffers in again
// after glibc gave them back to the system. Under AddressSanitizer every buffer is a fresh heap
// block.
void* take_value_buffer(std::size_t bytes);  // throws std::bad_alloc
void give_value_buffer(void* pointer, std::size_t bytes) noexcept;
}  // namespace detail

class Values {
 public:
  using value_type = double;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = double&;
  using const_reference = const double&;
  using pointer = double*;
  using const_pointer = const double*;
  using iterator = double*;
  using const_iterator = const double*;

  static constexpr std::size_t small_capacity = 4;  // copy_small's limit

  Values() noexcept : data_(small_) {}
  explicit Values(std::size_t count) : Values() { resize(count); }  // elements unset
  Values(std::size_t count, double value) : Values() { resize(count, value); }
  template <std::input_iterator Iterator>
  Values(Iterator first, Iterator last) : Values() {
    assign(first, last);
  }
  Values(std::initializer_list<double> values) : Values(values.begin(), values.end()) {}
  Values(const Values& other) : Values(other.begin(), other.end()) {}
  Values(Values&& other) noexcept : Values() { take(other); }
  Values& operator=(const Values& other) {
    if (this != &other) assign(other.begin(), other.end());
    return *this;
  }
  Values& operator=(Values&& other) noexcept {
    if (this != &other) {
      free_heap();
      data_ = small_;
      capacity_ = small_capacity;
      take(other);
    }
    return *this;
  }
  Values& operator=(std::initializer_list<double> values) {
    assign(values.begin(), values.end());
    return *this;
  }
  ~Values() { free_heap(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return capacity_; }
  double* data() noexcept { return data_; }
  const double* data() const noexcept { return data_; }
  double& operator[](std::size_t i) noexcept { return data_[i]; }
  const double& operator[](std::size_t i) const noexcept { return data_[i]; }
  double& front() noexcept { return data_[0]; }
  const double& front() const noexcept { return data_[0]; }
  double& back() noexcept { return data_[size_ - 1]; }
  const double& back() const noexcept { return data_[size_ - 1]; }
  double* begin() noexcept { return data_; }
  double* end() noexcept { return data_ + size_; }
  const double* begin() const noexcept { return data_; }
  const double* end() const noexcept { return data_ + size_; }
  const double* cbegin() const noexcept { return data_; }
  const double* cend() const noexcept { return data_ + size_; }

  void reserve(std::size_t count) {
    if (count > capacity_) reallocate(count);
  }
  // New elements are left unset.
  void resize(std::size_t count) {
    reserve(count);
    size_ = count;
  }
  void resize(std::size_t count, double value) {
    reserve(count);
    if (count > size_) std::fill(data_ + size_, data_ + count, value);
    size_ = count;
  }
  void clear() noexcept { size_ = 0; }
  void push_back(double value) {
    if (size_ == capacity_) reallocate(grown(size_ + 1));
    data_[size_++] = value;
  }
  void emplace_back(double value) { push_back(value); }
  void pop_back() noexcept { --size_; }
  template <std::input_iterator Iterator>
  void assign(Iterator first, Iterator last) {
    clear();
    append(first, last);
  }
  void assign(std::size_t count, double value) {
    clear();
    resize(count, value);
  }
  // Inserts [first, last) before `position`.
  template <std::input_iterator Iterator>
  double* insert(const double* position, Iterator first, Iterator last) {
    const auto at = static_cast<std::size_t>(position - data_);
    const std::size_t old_size = size_;
    append(first, last);
    std::rotate(data_ + at, data_ + old_size, data_ + size_);
    return data_ + at;
  }
  void swap(Values& other) noexcept {
    Values temporary(std::move(other));
    other = std::move(*this);
    *this = std::move(temporary);
  }
  friend void swap(Values& a, Values& b) noexcept { a.swap(b); }

  friend bool operator==(const Values& a, const Values& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

  // For tensors (tensor.cpp): is the buffer this object's own inline storage? If not, hand it
  // over: the caller frees it with detail::give_value_buffer(data, capacity * sizeof(double)),
  // and this object is left empty.
  bool is_small() const noexcept { return data_ == small_; }
  double* release_heap(std::size_t& capacity) noexcept {
    double* released = data_;
    capacity = capacity_;
    data_ = small_;
    size_ = 0;
    capacity_ = small_capacity;
    return released;
  }
  // Takes over a buffer from detail::take_value_buffer of `capacity` doubles, `count` of them set.
  void adopt_heap(double* buffer, std::size_t count, std::size_t capacity) noexcept {
    free_heap();
    data_ = buffer;
    size_ = count;
    capacity_ = capacity;
  }

 private:
  static std::size_t grown(std::size_t needed) {
    return std::max<std::size_t>(needed, 2 * small_capacity);
  }
  template <class Iterator>
  void append(Iterator first, Iterator last) {
    if constexpr (std::forward_iterator<Iterator>) {
      const auto count = static_cast<std::size_t>(std::distance(first, last));
      reserve(size_ + count);
      std::copy(first, last, data_ + size_);
      size_ += count;
    } else {
      for (; first != last; ++first) push_back(*first);
    }
  }
  // Room for `count` elements; growing a filled buffer at least doubles it, so appends are
  // amortised O(1).
  void reallocate(std::size_t count) {
    if (size_ > 0) count = std::max(count, 2 * capacity_);
    if (count > max_size()) throw std::bad_array_new_length();
    auto* fresh = static_cast<double*>(detail::take_value_buffer(count * sizeof(double)));
    std::copy(data_, data_ + size_, fresh);
    free_heap();
    data_ = fresh;
    capacity_ = count;
  }
  void free_heap() noexcept {
    if (data_ != small_) detail::give_value_buffer(data_, capacity_ * sizeof(double));
  }
  void take(Values& other) noexcept {
    if (other.data_ == other.small_) {
      detail::copy_small(other.small_, other.size_, small_);
      size_ = other.size_;
    } else {
      data_ = other.data_;
      size_ = other.size_;
      capacity_ = other.capacity_;
      other.data_ = other.small_;
      other.capacity_ = small_capacity;
    }
    other.size_ = 0;
  }
  static constexpr std::size_t max_size() { return PTRDIFF_MAX / sizeof(double); }

  double* data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = small_capacity;
  double small_[small_capacity];
};

}  // namespace tapegrad
