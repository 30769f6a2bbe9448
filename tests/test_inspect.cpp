// Inspect: the tools for seeing gradients. Tape printing, traced backward (its text compared
// line for line), to_dot (its boxes and edges, and that Graphviz parses it) and check_gradient
// (a correct closed form passes, the seed document's sign slip fails).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/check_gradient.hpp"
#include "tapegrad/core/dot.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

bool dot_on_path() {
  return std::system("command -v dot > /dev/null 2>&1") == 0;
}

// ---------------------------------------------------------------------------------------------
// Tape printing

TEST(Inspect, TapePrintShowsEveryNodeWithValuesAndGradients) {
  Tape tape;
  tape.keep_gradients();
  const Tensor w = scalar(0.5).requires_grad_();
  const Tensor b = scalar(-1.0).requires_grad_();
  const Tensor x = scalar(2.0);
  const Tensor a = sigmoid(add(mul(w, x), b));  // z = 0, a = 1/2, da/dz = 1/4
  a.backward();

  const std::vector<std::string> lines = lines_of(fmt::format("{}", tape));
  ASSERT_EQ(lines.size(), 4u) << fmt::format("{}", tape);
  EXPECT_EQ(lines[0], "Tape with 3 nodes");
  EXPECT_EQ(
      lines[1],
      "  #0   mul                        (leaf#0, leaf#1(const)) -> []  value [1]  grad [0.25]");
  EXPECT_EQ(lines[2],
            "  #1   add                        (#0, leaf#2) -> []  value [0]  grad [0.25]");
  EXPECT_EQ(lines[3], "  #2   sigmoid                    (#1) -> []  value [0.5]  grad [1]");
}

TEST(Inspect, TapePrintWithoutKeptGradientsShowsValuesOnly) {
  Tape tape;
  const Tensor w = tensor({1.0, 2.0, 3.0}).requires_grad_();
  const Tensor y = sum(square(w));
  y.backward();
  const std::string text = fmt::format("{}", tape);
  EXPECT_TRUE(contains(text, "Tape with 2 nodes")) << text;
  EXPECT_TRUE(contains(text, "(leaf#0) -> [3]  value [1, 4, 9]\n")) << text;
  EXPECT_TRUE(contains(text, "(#0) -> []  value [14]\n")) << text;
  EXPECT_FALSE(contains(text, "grad")) << text;
}

// ---------------------------------------------------------------------------------------------
// Traced backward

// The scalar neuron a = sigmoid(w x + b) at w = 1/2, x = 2, b = -1: z = 0, so every number in
// the trace is exact (sigma(0) = 1/2, sigma'(0) = 1/4).
TEST(Inspect, TracedBackwardOfThreeNodeGraphIsExact) {
  Tape tape;
  const Tensor w = scalar(0.5).requires_grad_();
  const Tensor b = scalar(-1.0).requires_grad_();
  const Tensor x = scalar(2.0);
  const Tensor wx = mul(w, x);
  const int mul_line = __LINE__ - 1;
  const Tensor z = add(wx, b);
  const int add_line = __LINE__ - 1;
  const Tensor a = sigmoid(z);
  const int sigmoid_line = __LINE__ - 1;

  std::vector<std::string> trace;
  a.backward({.trace = [&](std::string_view line) { trace.emplace_back(line); }});

  const std::string file = __FILE__;
  const std::vector<std::string> expected = {
      fmt::format("node 2 sigmoid []  (called at {}:{})", file, sigmoid_line),
      "  rule  dx = g * y * (1 - y)",
      "  g     tensor(1, shape=[])",
      "  -> input 0 (node 1 add []): tensor(0.25, shape=[])",
      fmt::format("node 1 add []  (called at {}:{})", file, add_line),
      "  rule  da = g, db = g",
      "  g     tensor(0.25, shape=[])",
      "  -> input 0 (node 0 mul []): tensor(0.25, shape=[])",
      "  -> input 1 (leaf []): tensor(0.25, shape=[])",
      fmt::format("node 0 mul []  (called at {}:{})", file, mul_line),
      "  rule  da = g * b, db = g * a",
      "  g     tensor(0.25, shape=[])",
      "  -> input 0 (leaf []): tensor(0.5, shape=[])",
  };
  EXPECT_EQ(trace, expected) << fmt::format("{}", fmt::join(trace, "\n"));
  EXPECT_DOUBLE_EQ(w.grad().item(), 0.5);
  EXPECT_DOUBLE_EQ(b.grad().item(), 0.25);
}

TEST(Inspect, TracedGradMatchesTracedBackward) {
  Tape tape;
  const Tensor w = tensor({0.3, -0.7}).requires_grad_();
  const Tensor y = sum(tanh(w));
  std::vector<std::string> from_backward, from_grad;
  y.backward({.trace = [&](std::string_view line) { from_backward.emplace_back(line); }});
  grad(y, {w}, {.trace = [&](std::string_view line) { from_grad.emplace_back(line); }});
  EXPECT_EQ(from_backward, from_grad);
  EXPECT_EQ(from_backward.size(), 8u);
}

// ---------------------------------------------------------------------------------------------
// to_dot

TEST(Inspect, DotHasABoxPerTensorAnEllipsePerOpAndTheEdges) {
  Tape tape;
  tape.keep_gradients();
  const Tensor w = scalar(0.5).requires_grad_();
  const Tensor b = scalar(-1.0).requires_grad_();
  const Tensor x = scalar(2.0);
  const Tensor unrelated = exp(w);  // node 0: not on the path to `a`, so not drawn
  const Tensor a = sigmoid(add(mul(w, x), b));
  a.backward();

  const std::string dot = to_dot(a, {{w, "w"}, {b, "b"}, {x, "x"}, {a, "a"}});
  SCOPED_TRACE(dot);
  EXPECT_TRUE(dot.starts_with("digraph tapegrad {\n"));
  EXPECT_TRUE(dot.ends_with("}\n"));
  // Leaves, with names, values, and gradients for parameters; constants have none.
  EXPECT_TRUE(contains(dot,
                       "leaf0 [shape=box, style=filled, fillcolor=\"#cfe2ff\", "
                       "label=\"w  []\\nvalue [0.5]\\ngrad [0.5]\"];"));
  EXPECT_TRUE(contains(dot,
                       "[shape=box, style=filled, fillcolor=\"#e9ecef\", "
                       "label=\"x  []\\nvalue [2]\"];"));
  EXPECT_TRUE(contains(dot, "label=\"b  []\\nvalue [-1]\\ngrad [0.25]\"];"));
  // Results, unnamed ones by node index, with the gradient kept on the tape.
  EXPECT_TRUE(contains(dot, "t1 [shape=box, label=\"#1  []\\nvalue [1]\\ngrad [0.25]\"];"));
  EXPECT_TRUE(
      contains(dot, "t3 [shape=box, peripheries=2, label=\"a  []\\nvalue [0.5]\\ngrad [1]\"];"));
  // Ops, with their rules and call sites.
  EXPECT_TRUE(contains(dot,
                       "op3 [shape=ellipse, style=filled, fillcolor=\"#fff3cd\", "
                       "label=\"sigmoid\\ndx = g * y * (1 - y)\\ntest_inspect.cpp:"));
  // Edges input -> op -> result, numbered for two-input ops.
  EXPECT_TRUE(contains(dot, "  leaf0 -> op1 [label=\"0\"];\n"));
  EXPECT_TRUE(contains(dot, "  op1 -> t1;\n"));
  EXPECT_TRUE(contains(dot, "  t1 -> op2 [label=\"0\"];\n"));
  EXPECT_TRUE(contains(dot, "  op2 -> t2;\n"));
  EXPECT_TRUE(contains(dot, "  t2 -> op3;\n"));
  EXPECT_TRUE(contains(dot, "  op3 -> t3;\n"));
  // Node 0 (exp) does not lead to `a`.
  EXPECT_FALSE(contains(dot, "exp"));
  EXPECT_FALSE(contains(dot, "op0"));
  // Four leaves would mean w was drawn twice.
  EXPECT_FALSE(contains(dot, "leaf3"));
}

TEST(Inspect, DotParsesWithGraphviz) {
  if (!dot_on_path()) GTEST_SKIP() << "Graphviz 'dot' is not on PATH; install graphviz to run";
  Tape tape;
  tape.keep_gradients();
  const Tensor w = tensor({{0.1, -0.2}, {0.3, 0.4}, {-0.5, 0.6}}).requires_grad_();
  const Tensor x = tensor({1.0, -2.0});
  const Tensor t = tensor({0.0, 1.0, 0.0});
  const Tensor z = sum(mul(w, x), 1);
  const Tensor loss = nn::cross_entropy_with_logits(z, t);
  loss.backward();

  const auto dir = std::filesystem::temp_directory_path();
  const std::string stem = fmt::format("tapegrad_inspect_{}", ::getpid());
  const auto dot_path = dir / (stem + ".dot"), svg_path = dir / (stem + ".svg");
  write_dot(loss, dot_path.string(), {{w, "W \"weights\""}, {loss, "loss"}});
  const std::string command =
      fmt::format("dot -Tsvg '{}' -o '{}' 2>&1", dot_path.string(), svg_path.string());
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream svg(svg_path);
  std::stringstream content;
  content << svg.rdbuf();
  EXPECT_TRUE(contains(content.str(), "<svg")) << content.str().substr(0, 200);
  EXPECT_TRUE(contains(content.str(), "cross_entropy_with_logits"));
  std::filesystem::remove(dot_path);
  std::filesystem::remove(svg_path);
}

TEST(Inspect, DotOfClearedTapeIsAnError) {
  Tape tape;
  const Tensor w = scalar(1.0).requires_grad_();
  const Tensor y = exp(w);
  tape.clear();
  EXPECT_THROW(to_dot(y), AutogradError);
  // A leaf is one box.
  EXPECT_TRUE(contains(to_dot(w, {{w, "w"}}), "leaf0 [shape=box"));
}

// ---------------------------------------------------------------------------------------------
// check_gradient

// The seed's section 4: one sigmoid neuron with binary cross-entropy, dL/dw = (a - y) x,
// dL/db = a - y.
struct Neuron {
  Tensor x = tensor({1.5, -0.5, 2.0});
  double y = 1.0;
  Tensor loss(const std::vector<Tensor>& in) const {
    const Tensor a = sigmoid(add(sum(mul(in[0], x)), in[1]));
    return nn::binary_cross_entropy(a, scalar(y));
  }
  std::vector<Tensor> closed_form(const std::vector<Tensor>& in, double sign) const {
    const double z = (in[0].values()[0] * 1.5 - in[0].values()[1] * 0.5 + in[0].values()[2] * 2.0) +
                     in[1].item();
    const double a = 1.0 / (1.0 + std::exp(-z));
    const double r = sign * (a - y);  // sign -1: the note's (y - a), a descent direction
    return {tensor({r * 1.5, r * -0.5, r * 2.0}), scalar(r)};
  }
};

TEST(Inspect, CheckGradientPassesACorrectClosedForm) {
  const Neuron neuron;
  std::vector<std::string> printed;
  const CheckGradientResult r = check_gradient(
      [&](const std::vector<Tensor>& in) { return neuron.loss(in); },
      [&](const std::vector<Tensor>& in) { return neuron.closed_form(in, 1.0); },
      {tensor({0.2, -0.4, 0.1}).requires_grad_(), scalar(-0.3).requires_grad_()},
      {.names = {"w", "b"}, .sink = [&](std::string_view line) { printed.emplace_back(line); }});
  EXPECT_TRUE(r.passed) << r.table;
  EXPECT_EQ(r.elements_checked, 4u);
  EXPECT_EQ(r.elements_failed, 0u);
  EXPECT_LT(r.max_autodiff_difference, 1e-14);
  EXPECT_LT(r.max_finite_difference_difference, 1e-8);
  // One header, one column line, one row per element, one summary; the sink saw the table.
  ASSERT_EQ(printed.size(), 7u) << r.table;
  EXPECT_EQ(fmt::format("{}\n", fmt::join(printed, "\n")), r.table);
  EXPECT_TRUE(printed[0].starts_with("check_gradient: 2 inputs checked"));
  EXPECT_TRUE(contains(printed[1], "closed form"));
  EXPECT_TRUE(printed[2].starts_with("  w[0] ")) << printed[2];
  EXPECT_TRUE(printed[5].starts_with("  b ")) << printed[5];
  EXPECT_TRUE(printed[5].ends_with("ok")) << printed[5];
  EXPECT_TRUE(printed[6].starts_with("largest |closed - autodiff|"));
  EXPECT_TRUE(printed[6].ends_with("passed (4 elements)")) << printed[6];
  EXPECT_EQ(r.summary, printed[6]);
}

TEST(Inspect, CheckGradientFlagsTheSeedsSignSlip) {
  const Neuron neuron;
  const CheckGradientResult r =
      check_gradient([&](const std::vector<Tensor>& in) { return neuron.loss(in); },
                     [&](const std::vector<Tensor>& in) { return neuron.closed_form(in, -1.0); },
                     {tensor({0.2, -0.4, 0.1}).requires_grad_(), scalar(-0.3).requires_grad_()},
                     {.names = {"w", "b"}, .print = false});
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.elements_failed, 4u);
  // The worst element is the largest: w[2] (x = 2), where closed = -autodiff.
  EXPECT_EQ(r.input, 0u);
  EXPECT_EQ(r.index, (std::vector<std::int64_t>{2}));
  EXPECT_NEAR(r.closed_form, -r.autodiff, 1e-12);
  EXPECT_NEAR(r.autodiff, r.finite_difference, 1e-8);
  EXPECT_GT(r.max_autodiff_difference, 0.1);
  EXPECT_TRUE(contains(r.table, "WRONG")) << r.table;
  EXPECT_TRUE(contains(r.summary, "FAILED (4 of 4 elements wrong; worst w[2]")) << r.summary;
}

TEST(Inspect, CheckGradientFlagsAMissingFactorOnOneElement) {
  // d/dx sum(x^3) = 3 x^2; the closed form forgets the 3 on the middle element only.
  const Tensor x = tensor({0.5, -1.25, 2.0}).requires_grad_();
  const CheckGradientResult r = check_gradient(
      [](const std::vector<Tensor>& in) { return sum(pow(in[0], 3.0)); },
      [](const std::vector<Tensor>& in) {
        const auto v = in[0].values();
        return std::vector<Tensor>{tensor({3 * v[0] * v[0], v[1] * v[1], 3 * v[2] * v[2]})};
      },
      {x}, {.print = false});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.elements_failed, 1u);
  EXPECT_EQ(r.index, (std::vector<std::int64_t>{1}));
  EXPECT_TRUE(contains(r.table, "  input 0[1] ")) << r.table;
}

TEST(Inspect, CheckGradientRejectsMisshapenClosedFormsAndNonScalarF) {
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const auto f = [](const std::vector<Tensor>& in) { return sum(square(in[0])); };
  EXPECT_THROW(check_gradient(f, [](const std::vector<Tensor>&) { return std::vector<Tensor>{}; },
                              {x}, {.print = false}),
               ShapeError);
  EXPECT_THROW(
      check_gradient(f, [](const std::vector<Tensor>&) { return std::vector<Tensor>{scalar(1.0)}; },
                     {x}, {.print = false}),
      ShapeError);
  EXPECT_THROW(
      check_gradient([](const std::vector<Tensor>& in) { return square(in[0]); },
                     [](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * 2.0}; },
                     {x}, {.print = false}),
      ValueError);
  EXPECT_THROW(
      check_gradient(f, [](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0]}; },
                     {tensor({1.0})}, {.print = false}),
      ValueError);
}

}  // namespace
