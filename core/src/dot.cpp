#include "tapegrad/core/dot.hpp"

#include <fstream>
#include <unordered_map>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {

// A DOT string literal's body: quotes and backslashes escaped; "\n" is added by the caller as a
// DOT line break (backslash + n), never as a real newline.
std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string base_name(std::string_view path) {
  const auto slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

class DotWriter {
 public:
  explicit DotWriter(const TensorNames& names) {
    for (const auto& [tensor, name] : names) {
      if (tensor.defined()) names_[tensor.impl_ptr()] = name;
    }
  }

  void box(const std::string& id, const Tensor& t, const std::string& fallback, const Tensor& grad,
           bool is_output) {
    const auto named = names_.find(t.impl_ptr());
    const std::string title = named != names_.end() ? named->second : fallback;
    std::string label =
        fmt::format("{}  {}\\nvalue {}", escape(title), t.shape(), escape(summarize(t)));
    if (grad.defined()) label += fmt::format("\\ngrad {}", escape(summarize(grad)));
    std::string style = "shape=box";
    if (t.is_leaf()) {
      style += t.requires_grad() ? ", style=filled, fillcolor=\"#cfe2ff\""
                                 : ", style=filled, fillcolor=\"#e9ecef\"";
    }
    if (is_output) style += ", peripheries=2";
    fmt::format_to(std::back_inserter(out_), "  {} [{}, label=\"{}\"];\n", id, style, label);
  }

  void op(const std::string& id, const Node& node) {
    std::string label = escape(node.op);
    if (!node.rule_text.empty()) label += "\\n" + escape(node.rule_text);
    label += fmt::format("\\n{}:{}", escape(base_name(node.where.file_name())), node.where.line());
    fmt::format_to(std::back_inserter(out_),
                   "  {} [shape=ellipse, style=filled, fillcolor=\"#fff3cd\", label=\"{}\"];\n", id,
                   label);
  }

  void edge(const std::string& from, const std::string& to, std::string_view label = {}) {
    if (label.empty()) {
      fmt::format_to(std::back_inserter(out_), "  {} -> {};\n", from, to);
    } else {
      fmt::format_to(std::back_inserter(out_), "  {} -> {} [label=\"{}\"];\n", from, to, label);
    }
  }

  std::string& text() { return out_; }

 private:
  std::unordered_map<const detail::TensorImpl*, std::string> names_;
  std::string out_;
};

}  // namespace

std::string to_dot(const Tensor& output, const TensorNames& names) {
  DotWriter writer(names);
  std::string& out = writer.text();
  out += "digraph tapegrad {\n";
  out += "  node [fontname=\"Helvetica\", fontsize=11];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=9];\n";

  if (output.is_leaf()) {
    writer.box("leaf0", output, "leaf", output.grad(), true);
    out += "}\n";
    return out;
  }

  const detail::TensorImpl& impl = output.impl();
  const auto [tape, needed] = detail::ancestry(output, "to_dot", "draw the graph");
  const std::size_t top = impl.node;
  // Leaves numbered in order of first use in the forward pass, as tape printing numbers them.
  std::vector<Tensor> leaves;
  std::unordered_map<const detail::TensorImpl*, std::size_t> leaf_ids;
  for (std::size_t i = 0; i <= top; ++i) {
    if (!needed[i]) continue;
    for (const Tensor& input : tape->inputs_of(i)) {
      if (!input.defined() || !input.is_leaf()) continue;
      if (leaf_ids.try_emplace(input.impl_ptr(), leaves.size()).second) {
        leaves.push_back(input);
      }
    }
  }

  // Leaves first, then nodes in tape order, so the text reads as the forward pass ran.
  for (std::size_t k = 0; k < leaves.size(); ++k) {
    writer.box(fmt::format("leaf{}", k), leaves[k], "leaf", leaves[k].grad(), false);
  }
  for (std::size_t i = 0; i <= top; ++i) {
    if (!needed[i]) continue;
    const Node node = detail::node_view(*tape, i);
    const std::string op_id = fmt::format("op{}", i), result_id = fmt::format("t{}", i);
    writer.op(op_id, node);
    writer.box(result_id, node.result, fmt::format("#{}", i), node.grad, i == top);
    const bool number_edges = node.inputs.size() > 1;
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      const Tensor& input = node.inputs[k];
      if (!input.defined()) continue;
      const std::string from = input.is_leaf()
                                   ? fmt::format("leaf{}", leaf_ids.at(input.impl_ptr()))
                                   : fmt::format("t{}", input.impl().node);
      writer.edge(from, op_id, number_edges ? fmt::format("{}", k) : std::string());
    }
    writer.edge(op_id, result_id);
  }
  out += "}\n";
  return out;
}

void write_dot(const Tensor& output, const std::string& path, const TensorNames& names) {
  const std::string text = to_dot(output, names);
  std::ofstream file(path);
  if (!file) throw ValueError(fmt::format("write_dot: cannot open '{}' for writing", path));
  file << text;
  if (!file) throw ValueError(fmt::format("write_dot: writing '{}' failed", path));
}

namespace detail {

Ancestry ancestry(const Tensor& output, std::string_view who, std::string_view what) {
  const TensorImpl& impl = output.impl();
  Ancestry out{live_tape(impl), {}};
  if (out.tape == nullptr) {
    throw AutogradError(fmt::format(
        "{}: the output ({}, made by '{}') was recorded on a tape that has since been {}; {} "
        "before the tape is cleared",
        who, impl.shape, output.op(), stale_tape_fate(impl), what));
  }
  // One pass downward: a node's inputs were recorded before it, so by the time the pass reaches
  // node i every consumer of i has already marked it.
  out.needed.assign(impl.node + 1, false);
  out.needed[impl.node] = true;
  for (std::size_t i = impl.node + 1; i-- > 0;) {
    if (!out.needed[i]) continue;
    for (const Tensor& input : out.tape->inputs_of(i)) {
      if (input.defined() && !input.is_leaf()) out.needed[input.impl().node] = true;
    }
  }
  return out;
}

}  // namespace detail

}  // namespace tapegrad
