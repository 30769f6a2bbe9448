#pragma once
// TensorList: a few tensors stored inline. An op's inputs and a rule's gradients are one to three
// tensors; keeping them in the node instead of in a heap vector saves an allocation per op in
// the forward pass and per rule in the backward sweep. Longer lists spill to a vector.
#include <array>
#include <concepts>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

class TensorList {
 public:
  static constexpr std::size_t inline_capacity = 3;

  TensorList() = default;
  // TensorList{a, b}: each tensor copied (or moved, when a temporary) straight into its slot. A
  // constructor rather than std::initializer_list, whose elements are const and would be copied
  // twice: each copy of a handle is an atomic increment and a later decrement, and the record
  // path of every op and every rule passes through here.
  template <class... Tensors>
  requires(sizeof...(Tensors) > 0 && (std::same_as<std::remove_cvref_t<Tensors>, Tensor> && ...))
      TensorList(
          Tensors&&... tensors)  // NOLINT: implicit, so record(..., {x, y}, ...) reads plainly
      : size_(sizeof...(Tensors)) {
    if constexpr (sizeof...(Tensors) <= inline_capacity) {
      std::size_t i = 0;
      ((inline_[i++] = std::forward<Tensors>(tensors)), ...);
    } else {
      spilled_.reserve(sizeof...(Tensors));
      (spilled_.push_back(std::forward<Tensors>(tensors)), ...);
    }
  }
  // Implicit, so a rule may still return a std::vector<Tensor>.
  TensorList(const std::vector<Tensor>& tensors)  // NOLINT
  {
    assign(tensors.data(), tensors.size());
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Tensor& operator[](std::size_t i) { return data()[i]; }
  const Tensor& operator[](std::size_t i) const { return data()[i]; }
  Tensor* begin() { return data(); }
  Tensor* end() { return data() + size_; }
  const Tensor* begin() const { return data(); }
  const Tensor* end() const { return data() + size_; }
  operator std::span<const Tensor>() const { return {data(), size_}; }  // NOLINT

 private:
  Tensor* data() { return size_ <= inline_capacity ? inline_.data() : spilled_.data(); }
  const Tensor* data() const { return size_ <= inline_capacity ? inline_.data() : spilled_.data(); }
  void assign(const Tensor* first, std::size_t count) {
    size_ = count;
    if (count <= inline_capacity) {
      for (std::size_t i = 0; i < count; ++i) inline_[i] = first[i];
    } else {
      spilled_.assign(first, first + count);
    }
  }

  std::array<Tensor, inline_capacity> inline_;
  std::vector<Tensor> spilled_;
  std::size_t size_ = 0;
};

}  // namespace tapegrad
