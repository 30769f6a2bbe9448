#pragma once
// The tape as a picture: Graphviz DOT text for the part of the graph that `output` depends on.
//
// ```cpp
// const tapegrad::Tensor w = tapegrad::tensor({0.5, -1.0}).requires_grad_();
// const tapegrad::Tensor b = tapegrad::scalar(0.1).requires_grad_();
// tapegrad::Tape tape;
// const tapegrad::Tensor loss = tapegrad::sum(tapegrad::sigmoid(w + b));
// loss.backward();
// const std::string dot = tapegrad::to_dot(loss, {{w, "w"}, {b, "b"}, {loss, "loss"}});
// ```
// tapegrad::write_dot(loss, "graph.dot", names) writes the same text to a file; then
// `dot -Tpng graph.dot -o graph.png` draws it.
//
// Boxes are tensors: their name (if given) or "leaf" / "#i" (the node that made it, as in tape
// printing), shape, value summary (tapegrad::summarize) and, when known, the gradient: a leaf's
// grad(), or Node::grad on a tape that keeps gradients (Tape::keep_gradients) after a backward.
// Parameters (leaves that require grad) are filled blue, constants grey, `output` has a double
// border. Ellipses are ops: name, rule in words and the line that called it. Edges run
// input -> op -> result; an op with several inputs numbers its edges (0 = a, 1 = b, ...).
//
// Only nodes reachable backwards from `output` are drawn, found by one downward pass over the
// tape indices (a node's inputs always have smaller indices), with no recursion.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// Names for boxes, matched by identity (Tensor::same): {{w, "w"}, {b, "b"}}. Any tensor in the
// graph may be named, leaves or results.
using TensorNames = std::vector<std::pair<Tensor, std::string>>;

// DOT text for `output`'s graph. A leaf `output` is drawn as one box. A recorded `output` whose
// tape was cleared or destroyed is an AutogradError (its nodes are gone).
std::string to_dot(const Tensor& output, const TensorNames& names = {});

// to_dot written to `path`; a ValueError naming the path if it cannot be written.
void write_dot(const Tensor& output, const std::string& path, const TensorNames& names = {});

namespace detail {
// What to_dot and write_html walk: the live tape a recorded (non-leaf) `output` was made on, and
// which of its nodes `output` depends on (needed[i] for i up to output's node). A cleared or
// destroyed tape is an AutogradError naming `who`, telling the user to `what` before clearing.
struct Ancestry {
  TapeState* tape;
  std::vector<bool> needed;
};
Ancestry ancestry(const Tensor& output, std::string_view who, std::string_view what);
}  // namespace detail

}  // namespace tapegrad
