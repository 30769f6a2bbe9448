#pragma once
// Per-thread free lists of fixed-size blocks, for the allocations every training step repeats: a
// tensor's impl (with its shared_ptr control block), one per op and one per gradient, and a
// tape's first node chunk. W1's profile (docs/performance.md) put a third of its instructions in
// malloc and free, mostly of these; a recycled block is a pointer pop.
//
// Blocks of one size are interchangeable, so a block freed on another thread than the one that
// took it joins the freeing thread's list. A list keeps at most `Limit` blocks and hands the rest
// back to the heap, so one huge graph does not pin its memory for the thread's life. A list frees
// its blocks when its thread exits; a block given back after that (a tensor released by another
// thread_local's destructor) goes straight to the heap.
//
// Under AddressSanitizer the lists are bypassed: every block is a fresh heap block, so a use
// after free of an impl is still reported.
//
// Blocks go back with the unsized ::operator delete: clang before 19 declares the sized one only
// with -fsized-deallocation, and the fuzz build is clang's.
#include <cstddef>
#include <new>

#include "tapegrad/core/values.hpp"  // recycle_blocks

namespace tapegrad::detail {

template <std::size_t Size, std::size_t Limit>
class BlockRecycler {
 public:
  static void* take() {
    if constexpr (recycle_blocks) {
      List& list = list_;
      if (list.head != nullptr) {
        Block* block = list.head;
        list.head = block->next;
        --list.count;
        return block;
      }
    }
    return ::operator new(Size);
  }

  static void give(void* pointer) noexcept {
    if constexpr (recycle_blocks) {
      List& list = list_;
      // `alive` is read after the list's destructor on purpose: the thread's storage outlives
      // its thread_local destructors, and a destroyed list must not take blocks any more.
      if (list.alive && list.count < Limit) {
        auto* block = static_cast<Block*>(pointer);
        block->next = list.head;
        list.head = block;
        ++list.count;
        return;
      }
    }
    ::operator delete(pointer);
  }

 private:
  struct Block {
    Block* next;
  };
  static_assert(Size >= sizeof(Block));
  struct List {
    Block* head = nullptr;
    std::size_t count = 0;
    bool alive = true;
    List() = default;
    List(const List&) = delete;
    List& operator=(const List&) = delete;
    ~List() {
      alive = false;
      while (head != nullptr) {
        Block* block = head;
        head = block->next;
        ::operator delete(block);
      }
      count = 0;
    }
  };
  static thread_local List list_;
};

template <std::size_t Size, std::size_t Limit>
thread_local typename BlockRecycler<Size, Limit>::List BlockRecycler<Size, Limit>::list_;

// An allocator for std::allocate_shared drawing single objects from a BlockRecycler (arrays, which
// allocate_shared never asks for, from the heap).
template <class T, std::size_t Limit>
struct RecyclingAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = RecyclingAllocator<U, Limit>;
  };
  RecyclingAllocator() = default;
  template <class U>
  RecyclingAllocator(const RecyclingAllocator<U, Limit>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    if (n == 1) return static_cast<T*>(BlockRecycler<sizeof(T), Limit>::take());
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* pointer, std::size_t n) noexcept {
    if (n == 1) {
      BlockRecycler<sizeof(T), Limit>::give(pointer);
    } else {
      ::operator delete(pointer);
    }
  }
  template <class U>
  bool operator==(const RecyclingAllocator<U, Limit>&) const noexcept {
    return true;
  }
};

}  // namespace tapegrad::detail
