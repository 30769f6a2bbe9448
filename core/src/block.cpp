// The slow paths of the tensor blocks' per-thread free lists (detail::BlockLists, tensor.hpp).
//
// A list takes back any block of its class, also one allocated on another thread. A thread keeps
// at most BlockLists::max_cached_bytes (256 MiB) of free blocks: enough for a tape of about two
// million scalar nodes, so even a training step that large is served from the lists; a program
// that once built a much larger graph gives the rest back to the heap. The lists are freed when
// the thread exits. Blocks over 1 KiB (a node with dozens of inputs, a large captured rule) come
// from the heap each time. Under AddressSanitizer every block is a fresh heap block.
#include <new>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad::detail {

namespace {
// Frees the thread's lists at its exit; constructed (and so registered) on the thread's first give.
struct ListsCleanup {
  ListsCleanup() = default;
  ListsCleanup(const ListsCleanup&) = delete;
  ListsCleanup& operator=(const ListsCleanup&) = delete;
  ~ListsCleanup() {
    BlockLists& lists = block_lists;
    lists.open = false;
    lists.closed = true;  // a block freed by a later thread_local destructor goes to the heap
    for (void*& head : lists.heads) {
      while (head != nullptr) {
        void* block = head;
        head = *static_cast<void**>(block);
        ::operator delete(block);
      }
    }
    lists.cached_bytes = 0;
  }
  void arm() {}
};
thread_local ListsCleanup cleanup;
}  // namespace

void* take_block_slow(std::size_t bytes) {
  return ::operator new(bytes);
}

void give_block_slow(void* block, std::size_t bytes) noexcept {
  BlockLists& lists = block_lists;
  if (recycle_blocks && !lists.open && !lists.closed && bytes <= BlockLists::max_pooled_bytes) {
    cleanup.arm();  // the first use constructs it: its destructor now runs at this thread's exit
    lists.open = true;
    give_block(block, bytes);
    return;
  }
  ::operator delete(block);
}

}  // namespace tapegrad::detail
