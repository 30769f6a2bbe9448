#include "tapegrad/viz/html.hpp"

#include "tapegrad/core/dot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "page_template.hpp"
#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {

using Json = nlohmann::ordered_json;

// Values past this many per tensor are left out of the page (its summary still covers them all):
// a page must open at interactive speed whatever the tensors' sizes.
constexpr std::size_t max_values = 1024;
// Above this many boxes graphviz takes seconds; the layered layout stays instant.
constexpr std::size_t max_graphviz_boxes = 400;

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string dot_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string base_name(std::string_view path) {
  const auto slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// JSON has no NaN or infinity: those travel as the strings JavaScript's Number() reads back.
Json number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

Json values_json(const Tensor& t, std::size_t limit = max_values) {
  Json out = Json::array();
  const auto values = t.values();
  for (std::size_t i = 0; i < std::min(limit, values.size()); ++i) out.push_back(number(values[i]));
  return out;
}

Json tensor_json(const Tensor& t) {
  if (!t.defined()) return nullptr;
  Json shape = Json::array();
  for (std::size_t d = 0; d < t.rank(); ++d) shape.push_back(t.shape()[d]);
  return Json{{"shape", shape}, {"n", t.numel()}, {"v", values_json(t)}, {"summary", summarize(t)}};
}

struct Box {
  std::string id;  // "l<k>" for a leaf, "t<i>" for the result of tape node i
  std::string title;
  std::string kind;  // param, const, op, back
  Tensor tensor;
  std::optional<Node> node = {};         // a view into the tape: valid while the page is built
  std::vector<std::string> inputs = {};  // box ids, one per node input ("" for an undefined one)
  std::size_t depth = 0;
  bool output = false;
};

struct Step {
  std::size_t index;
  Tensor grad;
  std::vector<Tensor> sent;
  std::vector<Tensor> local;
};

struct Graph {
  std::vector<Box> boxes;  // leaves first, then nodes in tape order
  std::unordered_map<std::size_t, std::size_t> box_of_node;
  std::string output_id;
};

Graph collect(const Tensor& output, const HtmlOptions& options) {
  std::unordered_map<const detail::TensorImpl*, std::string> names;
  for (const auto& [tensor, name] : options.names) {
    if (tensor.defined()) names[tensor.impl_ptr()] = name;
  }
  const auto title_of = [&](const Tensor& t, const std::string& fallback) {
    const auto named = names.find(t.impl_ptr());
    return named != names.end() ? named->second : fallback;
  };
  const auto leaf_kind = [](const Tensor& t) { return t.requires_grad() ? "param" : "const"; };

  Graph graph;
  if (output.is_leaf()) {
    graph.boxes.push_back({.id = "l0",
                           .title = title_of(output, "leaf#0"),
                           .kind = leaf_kind(output),
                           .tensor = output,
                           .output = true});
    graph.output_id = "l0";
    return graph;
  }
  const detail::TensorImpl& impl = output.impl();
  // The nodes `output` depends on (as to_dot walks them), and below, the leaves in order of
  // first use, numbered as to_dot numbers them.
  const auto [tape, needed] = detail::ancestry(output, "write_html", "write the page");
  const std::size_t top = impl.node;
  std::unordered_map<const detail::TensorImpl*, std::size_t> leaf_box;
  for (std::size_t i = 0; i <= top; ++i) {
    if (!needed[i]) continue;
    for (const Tensor& input : tape->inputs_of(i)) {
      if (!input.defined() || !input.is_leaf()) continue;
      const std::size_t k = leaf_box.size();
      if (leaf_box.try_emplace(input.impl_ptr(), graph.boxes.size()).second) {
        graph.boxes.push_back({.id = fmt::format("l{}", k),
                               .title = title_of(input, fmt::format("leaf#{}", k)),
                               .kind = leaf_kind(input),
                               .tensor = input});
      }
    }
  }
  const auto [first_back, last_back] = options.backward_recorded;
  for (std::size_t i = 0; i <= top; ++i) {
    if (!needed[i]) continue;
    const Node node = detail::node_view(*tape, i);
    Box box{.id = fmt::format("t{}", i),
            .title = title_of(node.result, fmt::format("#{}", i)),
            .kind = (i >= first_back && i < last_back) ? "back" : "op",
            .tensor = node.result,
            .node = node,
            .output = i == top};
    for (const Tensor& input : node.inputs) {
      if (!input.defined()) {
        box.inputs.emplace_back();
        continue;
      }
      const Box& from = input.is_leaf() ? graph.boxes[leaf_box.at(input.impl_ptr())]
                                        : graph.boxes[graph.box_of_node.at(input.impl().node)];
      box.depth = std::max(box.depth, from.depth + 1);
      box.inputs.push_back(from.id);
    }
    graph.box_of_node[i] = graph.boxes.size();
    graph.boxes.push_back(std::move(box));
  }
  graph.output_id = fmt::format("t{}", top);
  return graph;
}

std::string box_label_head(const Box& box) {
  return box.node ? fmt::format("{}  {}", box.title, box.node->op) : box.title;
}

std::string box_label_value(const Box& box) {
  return fmt::format("{} {}", box.tensor.shape(), summarize(box.tensor));
}

// The built-in layout: a column per depth, boxes in a column in tape order; edges are curves from
// an input's right side to its consumer's left side.
std::string layered_svg(const Graph& graph) {
  constexpr double width = 190, height = 58, pitch_x = 250, pitch_y = 78, margin = 20;
  std::vector<std::size_t> column_fill;
  std::vector<std::pair<double, double>> at(graph.boxes.size());
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t b = 0; b < graph.boxes.size(); ++b) {
    const std::size_t d = graph.boxes[b].depth;
    if (column_fill.size() <= d) column_fill.resize(d + 1, 0);
    at[b] = {margin + static_cast<double>(d) * pitch_x,
             margin + static_cast<double>(column_fill[d]++) * pitch_y};
    index[graph.boxes[b].id] = b;
  }
  const double total_w = margin * 2 + static_cast<double>(column_fill.size() - 1) * pitch_x + width;
  const double total_h =
      margin * 2 +
      static_cast<double>(*std::max_element(column_fill.begin(), column_fill.end()) - 1) * pitch_y +
      height;
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "<svg width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\">\n",
                 total_w, total_h, total_w, total_h);
  out +=
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" "
      "markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n";
  for (std::size_t b = 0; b < graph.boxes.size(); ++b) {
    const Box& box = graph.boxes[b];
    for (std::size_t k = 0; k < box.inputs.size(); ++k) {
      if (box.inputs[k].empty()) continue;
      const auto [x0, y0] = at[index.at(box.inputs[k])];
      const auto [x1, y1] = at[b];
      const double sx = x0 + width, sy = y0 + height / 2, ex = x1, ey = y1 + height / 2;
      fmt::format_to(it,
                     "<g id=\"e_{}_{}\" class=\"edge\"><path d=\"M{:.0f},{:.0f} C{:.0f},{:.0f} "
                     "{:.0f},{:.0f} {:.0f},{:.0f}\" marker-end=\"url(#arrow)\"/></g>\n",
                     box.id, k, sx, sy, (sx + ex) / 2, sy, (sx + ex) / 2, ey, ex, ey);
    }
  }
  for (std::size_t b = 0; b < graph.boxes.size(); ++b) {
    const Box& box = graph.boxes[b];
    const auto [x, y] = at[b];
    fmt::format_to(it, "<g id=\"n_{}\" class=\"node {}\" transform=\"translate({:.0f},{:.0f})\">",
                   box.id, box.kind, x, y);
    if (box.node) {
      fmt::format_to(it, "<ellipse cx=\"{0}\" cy=\"{1}\" rx=\"{0}\" ry=\"{1}\"/>", width / 2,
                     height / 2);
      if (box.output) {
        fmt::format_to(it, "<ellipse cx=\"{0}\" cy=\"{1}\" rx=\"{2}\" ry=\"{3}\" fill=\"none\"/>",
                       width / 2, height / 2, width / 2 - 4, height / 2 - 4);
      }
    } else {
      fmt::format_to(it, "<rect width=\"{}\" height=\"{}\"/>", width, height);
    }
    const double cx = width / 2;
    fmt::format_to(it,
                   "<text x=\"{0}\" y=\"17\">{1}</text><text x=\"{0}\" y=\"33\">{2}</text>"
                   "<text x=\"{0}\" y=\"49\" class=\"gline\">g: (none yet)</text></g>\n",
                   cx, xml_escape(box_label_head(box)), xml_escape(box_label_value(box)));
  }
  out += "</svg>\n";
  return out;
}

bool dot_on_path() {
  return std::system("command -v dot > /dev/null 2>&1") == 0;
}

// Graphviz's SVG for the same boxes, with the ids the page's script looks for; empty when dot
// fails. Its XML prolog and namespace attributes (W3C URLs) are cut: inline SVG needs neither.
std::string graphviz_svg(const Graph& graph) {
  std::string dot = "digraph tapegrad {\n  rankdir=LR;\n";
  dot += "  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontsize=9];\n";
  const std::unordered_map<std::string, std::string> fill = {
      {"param", "#cfe2ff"}, {"const", "#e9ecef"}, {"op", "#fff3cd"}, {"back", "#e2d9f3"}};
  for (const Box& box : graph.boxes) {
    fmt::format_to(std::back_inserter(dot),
                   "  {0} [id=\"n_{0}\", class=\"{1}\", shape={2}, style=filled, "
                   "fillcolor=\"{3}\"{4}, label=\"{5}\\n{6}\\ng: (none yet)\"];\n",
                   box.id, box.kind, box.node ? "ellipse" : "box", fill.at(box.kind),
                   box.output ? ", peripheries=2" : "", dot_escape(box_label_head(box)),
                   dot_escape(box_label_value(box)));
  }
  for (const Box& box : graph.boxes) {
    for (std::size_t k = 0; k < box.inputs.size(); ++k) {
      if (box.inputs[k].empty()) continue;
      fmt::format_to(std::back_inserter(dot), "  {} -> {} [id=\"e_{}_{}\"{}];\n", box.inputs[k],
                     box.id, box.id, k,
                     box.inputs.size() > 1 ? fmt::format(", label=\"{}\"", k) : "");
    }
  }
  dot += "}\n";

  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec);
  if (ec) return {};
  const std::string stem = (dir / fmt::format("tapegrad-html-{}", std::random_device{}())).string();
  const std::string dot_path = stem + ".dot", svg_path = stem + ".svg";
  {
    std::ofstream file(dot_path);
    file << dot;
  }
  const int status =
      std::system(fmt::format("dot -Tsvg '{}' -o '{}' 2> /dev/null", dot_path, svg_path).c_str());
  std::stringstream svg;
  if (status == 0) svg << std::ifstream(svg_path).rdbuf();
  fs::remove(dot_path, ec);
  fs::remove(svg_path, ec);
  std::string text = svg.str();
  const auto start = text.find("<svg");
  if (status != 0 || start == std::string::npos) return {};
  text.erase(0, start);
  for (const std::string_view attribute : {" xmlns=\"", " xmlns:xlink=\""}) {
    const auto at = text.find(attribute);
    if (at == std::string::npos) continue;
    const auto end = text.find('"', at + attribute.size());
    text.erase(at, end + 1 - at);
  }
  return text;
}

void replace(std::string& text, std::string_view key, std::string_view value) {
  const auto at = text.find(key);
  if (at != std::string::npos) text.replace(at, key.size(), value);
}

std::string page(const Tensor& output, const HtmlOptions& options, const std::vector<Step>& steps) {
  const Graph graph = collect(output, options);

  std::string svg, layout = "layered", layout_note;
  const bool want_dot =
      options.layout == HtmlLayout::graphviz ||
      (options.layout == HtmlLayout::automatic && graph.boxes.size() <= max_graphviz_boxes);
  if (want_dot && dot_on_path()) {
    svg = graphviz_svg(graph);
    if (!svg.empty()) layout = "graphviz";
  }
  if (options.layout == HtmlLayout::graphviz && svg.empty()) {
    layout_note = "graphviz (dot) was not available at export time: layered layout";
  }
  if (svg.empty()) svg = layered_svg(graph);

  Json boxes = Json::array();
  std::unordered_map<std::string, const Box*> by_id;
  for (const Box& box : graph.boxes) {
    by_id[box.id] = &box;
    Json b{{"id", box.id},
           {"title", box.title},
           {"kind", box.kind},
           {"value", tensor_json(box.tensor)},
           {"inputs", box.inputs}};
    if (box.node) {
      b["op"] = box.node->op;
      b["rule"] = box.node->rule_text;
      b["where"] =
          fmt::format("{}:{}", base_name(box.node->where.file_name()), box.node->where.line());
    }
    if (box.output) b["output"] = true;
    boxes.push_back(std::move(b));
  }

  Json steps_json = Json::array();
  std::unordered_map<std::size_t, const Tensor*> node_grad;
  for (const Step& step : steps) {
    const Box& box = graph.boxes[graph.box_of_node.at(step.index)];
    node_grad[step.index] = &step.grad;
    Json sent = Json::array();
    for (std::size_t k = 0; k < step.sent.size(); ++k) {
      sent.push_back({{"to", box.inputs[k]},
                      {"grad", tensor_json(step.sent[k])},
                      {"local", tensor_json(step.local[k])}});
    }
    steps_json.push_back({{"node", box.id}, {"g", tensor_json(step.grad)}, {"sent", sent}});
  }

  // The node list, as tape printing shows it (leaves numbered over this graph), with each node's
  // gradient from this sweep.
  std::string tape_text = fmt::format("Tape: {} nodes for this output\n", graph.box_of_node.size());
  for (const Box& box : graph.boxes) {
    if (!box.node) continue;
    std::vector<std::string> inputs;
    for (const std::string& id : box.inputs) {
      if (id.empty()) {
        inputs.emplace_back("-");
      } else if (id[0] == 'l') {
        inputs.push_back(
            fmt::format("leaf#{}{}", id.substr(1), by_id.at(id)->kind == "const" ? "(const)" : ""));
      } else {
        inputs.push_back("#" + id.substr(1));
      }
    }
    const std::size_t index = std::stoul(box.id.substr(1));
    fmt::format_to(std::back_inserter(tape_text), "  #{:<3} {:<26} ({}) -> {}  value {}", index,
                   box.node->op, fmt::join(inputs, ", "), box.tensor.shape(),
                   summarize(box.tensor));
    if (const auto g = node_grad.find(index); g != node_grad.end()) {
      fmt::format_to(std::back_inserter(tape_text), "  grad {}", summarize(*g->second));
    }
    tape_text += "\n";
  }

  Json seed = options.seed.defined() ? tensor_json(options.seed) : tensor_json(ones_like(output));
  Json data{{"title", options.title}, {"layout", layout},         {"output", graph.output_id},
            {"seed", seed},           {"boxes", boxes},           {"steps", steps_json},
            {"tapeText", tape_text},  {"layoutNote", layout_note}};
  std::string blob = data.dump();
  // "</" would end the <script> element early; "<\/" is the same string to JSON.
  for (std::size_t at = 0; (at = blob.find("</", at)) != std::string::npos; at += 3) {
    blob.replace(at, 2, "<\\/");
  }

  std::string links;
  for (const auto& [text, file] : options.links) {
    links +=
        fmt::format("<a class=\"sibling\" href=\"{}\">{}</a> ", xml_escape(file), xml_escape(text));
  }
  std::string html(viz::page_template());
  replace(html, "@TITLE@", xml_escape(options.title));  // <title> and <h1>
  replace(html, "@TITLE@", xml_escape(options.title));
  replace(html, "@NOTE@", xml_escape(options.note));
  replace(html, "@LINKS@", links);
  replace(html, "@SVG@", svg);
  replace(html, "@DATA@", blob);
  return html;
}

std::vector<Step> record_sweep(const Tensor& output, const HtmlOptions& options) {
  std::vector<Step> steps;
  BackwardOptions backward_options;
  backward_options.observe = [&](const BackwardStep& step) {
    Step s{.index = step.index, .grad = step.grad, .sent = {}, .local = {}};
    s.sent.assign(step.input_grads.begin(), step.input_grads.end());
    // The local derivative: the rule at g = 1, summed to each input's shape as the sweep does.
    const NoGradGuard no_grad;
    const Tensor& result = step.node.result;
    const TensorList local = step.node.rule(ones(result.shape()), result, step.node.inputs);
    for (std::size_t k = 0; k < step.node.inputs.size(); ++k) {
      const Tensor& input = step.node.inputs[k];
      if (!s.sent[k].defined() || k >= local.size() || !local[k].defined()) {
        s.local.emplace_back();
      } else {
        s.local.push_back(local[k].shape() == input.shape() ? local[k]
                                                            : sum_to(local[k], input.shape()));
      }
    }
    steps.push_back(std::move(s));
  };
  backward(output, options.seed, backward_options);
  return steps;
}

}  // namespace

std::string to_html(const Tensor& output, const HtmlOptions& options) {
  collect(output, options);  // a stale tape is an error before any gradient moves
  const std::vector<Step> steps = record_sweep(output, options);
  return page(output, options, steps);
}

void write_html(const Tensor& output, const std::string& path, const HtmlOptions& options) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path temp = target.parent_path() / fmt::format(".{}.tmp-{}", target.filename().string(),
                                                           std::random_device{}());
  // Opened before the sweep: a path that cannot be written leaves every gradient as it was.
  std::ofstream file;
  if (!target.filename().empty()) file.open(temp, std::ios::binary);
  if (!file.is_open()) {
    throw ValueError(fmt::format(
        "write_html: cannot write '{}' (its directory must exist and be writable)", path));
  }
  try {
    const std::string html = to_html(output, options);
    file << html;
    file.close();
    if (!file) throw ValueError(fmt::format("write_html: writing '{}' failed", path));
    std::error_code ec;
    fs::rename(temp, target, ec);
    if (ec) {
      throw ValueError(fmt::format("write_html: cannot write '{}': {}", path, ec.message()));
    }
  } catch (...) {
    file.close();
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  }
}

}  // namespace tapegrad
