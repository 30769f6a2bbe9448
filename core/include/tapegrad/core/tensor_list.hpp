#pragma once
// TensorList: a few tensors stored inline. An op's inputs and a rule's gradients are one to three
// tensors; keeping them in the node instead of in a heap vector saves an allocation per op in
// the forward pass and per rule in the backward sweep. Longer lists spill to a vector.
#include <concepts>
#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

class TensorList {
 public:
  static constexpr std::size_t inline_capacity = 3;

  TensorList() noexcept = default;
  // TensorList{a, b}: each tensor copied (or moved, when a temporary) straight into its slot. A
  // constructor rather than std::initializer_list, whose elements are const and would be copied
  // twice: each copy of a handle is an atomic increment and a later decrement, and the record
  // path of every op and every rule passes through here.
  template <class... Tensors>
  requires(sizeof...(Tensors) > 0 && (std::same_as<std::remove_cvref_t<Tensors>, Tensor> && ...))
      TensorList(
          Tensors&&... tensors)  // NOLINT: implicit, so record(..., {x, y}, ...) reads plainly
  {
    reserve(sizeof...(Tensors));
    (::new (data_ + size_++) Tensor(std::forward<Tensors>(tensors)), ...);
  }
  // Implicit, so a rule may still return a std::vector<Tensor>.
  TensorList(const std::vector<Tensor>& tensors)  // NOLINT
  {
    reserve(tensors.size());
    for (const Tensor& t : tensors) ::new (data_ + size_++) Tensor(t);
  }
  TensorList(const TensorList& other) {
    reserve(other.size_);
    for (const Tensor& t : other) ::new (data_ + size_++) Tensor(t);
  }
  TensorList(TensorList&& other) noexcept { take(other); }
  TensorList& operator=(const TensorList& other) {
    if (this != &other) {
      TensorList copy(other);
      reset();
      take(copy);
    }
    return *this;
  }
  TensorList& operator=(TensorList&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  // Inline: every backward step ends one, most of its tensors already moved out.
  [[gnu::always_inline]] ~TensorList() {
    for (std::size_t i = 0; i < size_; ++i) data_[i].~Tensor();
    if (capacity_ > inline_capacity) std::allocator<Tensor>().deallocate(data_, capacity_);
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void push_back(Tensor tensor) {
    if (size_ == capacity_) grow();
    ::new (data_ + size_++) Tensor(std::move(tensor));
  }
  Tensor& operator[](std::size_t i) { return data_[i]; }
  const Tensor& operator[](std::size_t i) const { return data_[i]; }
  Tensor* begin() { return data_; }
  Tensor* end() { return data_ + size_; }
  const Tensor* begin() const { return data_; }
  const Tensor* end() const { return data_ + size_; }
  operator std::span<const Tensor>() const { return {data_, size_}; }  // NOLINT

 private:
  Tensor* inline_slots() { return std::launder(reinterpret_cast<Tensor*>(inline_)); }
  // Room for `count` tensors, in the inline slots or on the heap (the list is empty).
  void reserve(std::size_t count) {
    if (count > inline_capacity)
      data_ = std::allocator<Tensor>().allocate(count), capacity_ = count;
  }
  // Twice the room, on the heap.
  void grow() {
    Tensor* bigger = std::allocator<Tensor>().allocate(2 * capacity_);
    for (std::size_t i = 0; i < size_; ++i) {
      ::new (bigger + i) Tensor(std::move(data_[i]));
      data_[i].~Tensor();
    }
    if (capacity_ > inline_capacity) std::allocator<Tensor>().deallocate(data_, capacity_);
    data_ = bigger;
    capacity_ *= 2;
  }
  // Destroys the tensors and frees a heap array: the list is empty and inline again.
  void reset() noexcept {
    for (std::size_t i = 0; i < size_; ++i) data_[i].~Tensor();
    if (capacity_ > inline_capacity) std::allocator<Tensor>().deallocate(data_, capacity_);
    data_ = inline_slots();
    size_ = 0;
    capacity_ = inline_capacity;
  }
  // Moves `other`'s tensors here (this list is empty and inline); `other` is left empty.
  void take(TensorList& other) noexcept {
    if (other.capacity_ > inline_capacity) {
      data_ = other.data_;
      capacity_ = other.capacity_;
    } else {
      for (std::size_t i = 0; i < other.size_; ++i) {
        ::new (data_ + i) Tensor(std::move(other.data_[i]));
        other.data_[i].~Tensor();
      }
    }
    size_ = other.size_;
    other.data_ = other.inline_slots();
    other.size_ = 0;
    other.capacity_ = inline_capacity;
  }

  alignas(Tensor) std::byte inline_[inline_capacity * sizeof(Tensor)];
  Tensor* data_ = inline_slots();
  std::size_t size_ = 0;
  std::size_t capacity_ = inline_capacity;
};

}  // namespace tapegrad
