#pragma once
// A backward sweep a student can step through: one self-contained HTML file (inline CSS, JS and
// SVG; no network, no server; opens from file://) recorded from a real tape and a real sweep.
//
// ```cpp
// const tapegrad::Tensor w = tapegrad::scalar(0.6).requires_grad_();
// const tapegrad::Tensor b = tapegrad::scalar(0.9).requires_grad_();
// tapegrad::Tape tape;
// const tapegrad::Tensor a = tapegrad::sigmoid(w * 1.0 + b);
// const tapegrad::Tensor loss = tapegrad::nn::binary_cross_entropy(a, tapegrad::scalar(0.0));
// tapegrad::write_html(loss, "neuron.html", {.title = "one neuron", .names = {{w, "w"}, {b,
// "b"}}});
// // w.grad() and b.grad() now hold the gradients the page shows at its last step
// ```
//
// The page shows the graph of everything `output` depends on (parameters blue, constants grey, op
// nodes yellow, nodes a create_graph backward recorded purple, the output with a double border),
// each node's value (up to 6 numbers in full, otherwise a summary; all of them on click), and the
// sweep one node per step (buttons, the left/right arrow keys, a slider, play/pause): the current
// node, its rule in words, the line that called the op, the incoming gradient g, the local
// derivative, the gradient sent to each input and what each input has accumulated so far (a
// tensor used twice shows both contributions and their sum). "node list" shows the tape as tape
// printing does.
//
// The local derivative shown for input k is the op's rule evaluated at g = 1 (a tensor of ones),
// i.e. d(sum of the result)/d(input k): for an elementwise op that is dy/dx itself, element by
// element; for a reduction or a matmul it is the row/column sum of the Jacobian.
//
// The page exposes its state for tests and scripts as `window.tapegradState` ({step, steps,
// current, leafGrads: {name: [numbers]}}), and as data-* attributes on #state.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/core/dot.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

enum class HtmlLayout {
  automatic,  // graphviz when `dot` is on PATH and the graph has at most 400 boxes, else layered
  graphviz,   // `dot -Tsvg` at export time (falls back to layered, saying so, without `dot`)
  layered,    // built in: a column per depth (a leaf is depth 0, a node one more than its inputs)
};

struct HtmlOptions {
  std::string title = "tapegrad: backward, step by step";
  // Names for boxes, as to_dot: {{w, "w"}, {b, "b"}}; unnamed leaves are leaf#k, results #i.
  TensorNames names = {};
  // dLoss/doutput, as backward's seed; undefined for a scalar output (then 1).
  Tensor seed = {};
  // Tape nodes [first, last) that a backward with create_graph recorded (take tape.size() before
  // and after the grad(..., {.create_graph = true}) call): drawn in their own colour, so the
  // second sweep of a Hessian-vector product shows which of its steps differentiate the first.
  std::pair<std::size_t, std::size_t> backward_recorded = {0, 0};
  // A paragraph shown under the title (plain text).
  std::string note = {};
  // Links to sibling pages, shown under the note: {text, file name of a page beside this one}.
  std::vector<std::pair<std::string, std::string>> links = {};
  HtmlLayout layout = HtmlLayout::automatic;
};

// Runs the backward sweep from `output` (as output.backward(options.seed) would: the leaves'
// grad() accumulate), recording every step, and writes the page to `path`. The file appears
// whole or not at all: it is written beside `path` under a temporary name and renamed. A path
// that cannot be written is a ValueError naming write_html and the path (checked before the
// sweep, so the leaves' gradients are then untouched); errors of the sweep itself are backward's.
void write_html(const Tensor& output, const std::string& path, const HtmlOptions& options = {});

// The same page as a string (no file, no rename).
std::string to_html(const Tensor& output, const HtmlOptions& options = {});

}  // namespace tapegrad
