// Pages to step through a backward sweep in a browser (tapegrad::write_html), one per example of
// the course: the seed's sigmoid neuron under cross-entropy and under 1/2 squared error (two
// linked pages: sigma'(z) shrinks the second), the softmax classifier (p - t at the logits), a
// shared subexpression (the product rule as two contributions and their sum), a Hessian-vector
// product (the second sweep, through the nodes the first backward recorded) and a chain of 1000
// nodes (the page stays interactive).
//
//   backward_pages [directory]      writes <name>.html and <name>.expected.json there (default .)
//
// <name>.expected.json holds what tapegrad computed, for the browser test to compare with what
// the page shows: each parameter's grad() after the sweep, and the number of nodes the sweep
// visits, counted from traced backward's text (an independent record of the same sweep).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <tapegrad/tapegrad.hpp>

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

struct Param {
  Tensor tensor;
  std::string name;
};

// Writes the page and its expected values. The step count comes from a traced grad() over the
// same graph (grad() leaves grad() alone), before write_html runs the recorded backward.
void write_page(const std::filesystem::path& dir, const std::string& name, const Tensor& output,
                const std::vector<Param>& params, HtmlOptions options) {
  std::size_t visited = 0;
  std::vector<Tensor> inputs;
  for (const Param& p : params) {
    inputs.push_back(p.tensor);
    options.names.emplace_back(p.tensor, p.name);
  }
  grad(output, std::span<const Tensor>(inputs),
       {.allow_unused = true, .trace = [&](std::string_view line) {
          if (line.starts_with("node ")) ++visited;
        }});
  const std::string page = (dir / (name + ".html")).string();
  write_html(output, page, options);

  std::string json = fmt::format("{{\n  \"page\": \"{}.html\",\n  \"steps\": {},\n  \"leaves\": {{",
                                 name, visited);
  for (std::size_t k = 0; k < params.size(); ++k) {
    std::vector<std::string> values;
    for (double v : params[k].tensor.grad().values()) values.push_back(fmt::format("{:.17g}", v));
    json +=
        fmt::format("{}\n    \"{}\": [{}]", k ? "," : "", params[k].name, fmt::join(values, ", "));
  }
  json += "\n  }\n}\n";
  std::ofstream((dir / (name + ".expected.json")).string()) << json;
  fmt::print("{}  ({} steps)\n", page, visited);
}

void neuron_pages(const std::filesystem::path& dir) {
  // The seed's section 3 neuron at the start of Nielsen's first run: x = 1, y = 0, w = 0.6, b =
  // 0.9.
  const Tensor x = scalar(1.0), y = scalar(0.0);
  const std::string note_common =
      "z = w x + b, a = sigmoid(z), x = 1, y = 0, w = 0.6, b = 0.9. Watch the gradient arriving at "
      "z: ";
  {
    Tape tape;
    const Tensor w = scalar(0.6).requires_grad_(), b = scalar(0.9).requires_grad_();
    const Tensor z = add(mul(w, x), b);
    const Tensor a = sigmoid(z);
    const Tensor loss = nn::binary_cross_entropy(a, y);
    write_page(
        dir, "neuron_cross_entropy", loss, {{w, "w"}, {b, "b"}},
        {.title = "One neuron, cross-entropy loss",
         .names = {{z, "z"}, {a, "a"}, {loss, "L"}},
         .note = note_common + fmt::format("with cross-entropy dL/dz = a - y = {:.6g}: the "
                                           "sigmoid's a(1 - a) is cancelled by the log, so a "
                                           "saturated wrong neuron still learns fast.",
                                           a.item() - y.item()),
         .links = {{"the same neuron with 1/2 squared error", "neuron_squared_error.html"}}});
  }
  {
    Tape tape;
    const Tensor w = scalar(0.6).requires_grad_(), b = scalar(0.9).requires_grad_();
    const Tensor z = add(mul(w, x), b);
    const Tensor a = sigmoid(z);
    const Tensor loss = nn::half_squared_error(a, y);
    write_page(
        dir, "neuron_squared_error", loss, {{w, "w"}, {b, "b"}},
        {.title = "One neuron, 1/2 squared error",
         .names = {{z, "z"}, {a, "a"}, {loss, "L"}},
         .note = note_common +
                 fmt::format("with 1/2 squared error dL/dz = (a - y) a (1 - a) = {:.6g}: the "
                             "sigmoid step multiplies by sigma'(z) = a (1 - a) = {:.6g}, "
                             "the learning slowdown.",
                             (a.item() - y.item()) * a.item() * (1 - a.item()),
                             a.item() * (1 - a.item())),
         .links = {{"the same neuron with cross-entropy", "neuron_cross_entropy.html"}}});
  }
}

void softmax_page(const std::filesystem::path& dir) {
  Tape tape;
  const Tensor x = tensor({{1.0, 2.0, -1.0}});  // one sample, 3 features
  const Tensor W =
      tensor({{0.2, -0.1, 0.4}, {0.5, 0.3, -0.2}, {-0.3, 0.8, 0.1}}).requires_grad_();  // 3 classes
  const Tensor b = tensor({0.0, 0.1, -0.1}).requires_grad_();
  const Tensor t = tensor({{0.0, 0.0, 1.0}});  // the true class is 2
  const Tensor z = matmul(x, W, {.transpose_b = true}) + b;
  const Tensor p = softmax(z);
  const Tensor loss = nn::cross_entropy(p, t);
  write_page(dir, "softmax_classifier", loss, {{W, "W"}, {b, "b"}},
             {.title = "Softmax classifier, cross-entropy",
              .names = {{x, "x"}, {t, "t"}, {z, "z (logits)"}, {p, "p"}, {loss, "L"}},
              .note = fmt::format("p = softmax(W x + b), L = -sum t ln p with t = {}. When the "
                                  "sweep reaches the logits z, g is p - t = {} (the seed's "
                                  "section 5); dL/dW = (p - t)^T x and dL/db = p - t follow.",
                                  summarize(t), summarize(p - t))});
}

void shared_page(const std::filesystem::path& dir) {
  Tape tape;
  const Tensor w = scalar(0.7).requires_grad_(), b = scalar(0.2).requires_grad_();
  const Tensor x = scalar(1.5);
  const Tensor u = mul(w, x) + b;
  const Tensor loss = mul(u, sin(u));  // u is used twice: directly, and through sin
  write_page(dir, "shared_subexpression", loss, {{w, "w"}, {b, "b"}},
             {.title = "A shared subexpression: L = u sin(u), u = w x + b",
              .names = {{x, "x"}, {u, "u"}, {loss, "L"}},
              .note = "u feeds two ops. The sweep sends it sin(u) from the product and then "
                      "u cos(u) through sin; the page shows both contributions and their sum, "
                      "the product rule dL/du = sin(u) + u cos(u)."});
}

void hvp_page(const std::filesystem::path& dir) {
  Tape tape;
  const Tensor z = tensor({1.0, -0.5, 2.0}).requires_grad_();
  const Tensor t = tensor({0.0, 0.0, 1.0});
  const Tensor v = tensor({1.0, 0.0, 0.0});
  const Tensor loss = -sum(t * log(softmax(z)));
  const std::size_t first = tape.size();
  const Tensor g = grad(loss, {z}, {.create_graph = true})[0];  // p - t, recorded on the tape
  const std::size_t last = tape.size();
  const Tensor gv = sum(g * v);  // d(gv)/dz = H v
  write_page(dir, "hessian_vector_product", gv, {{z, "z"}},
             {.title = "Hessian-vector product: the second sweep",
              .names = {{t, "t"}, {v, "v"}, {loss, "L"}, {g, "dL/dz"}, {gv, "(dL/dz) . v"}},
              .backward_recorded = {first, last},
              .note = "The first backward ran with create_graph: it recorded dL/dz = p - t as ops "
                      "(purple). This page steps through the second sweep, from (dL/dz) . v back "
                      "to z, through the forward ops and the recorded ones alike; z's gradient is "
                      "H v = (diag(p) - p p^T) v, here the first column of the Hessian."});
}

void chain_page(const std::filesystem::path& dir) {
  Tape tape;
  const Tensor x = scalar(0.5).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 500; ++i) y = tanh(sin(y));  // 1000 nodes, one per step
  write_page(dir, "chain_1000", y, {{x, "x"}},
             {.title = "A chain of 1000 nodes",
              .note = "y = tanh(sin(...tanh(sin(x)))) 500 times: the page stays interactive."});
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : ".";
  std::filesystem::create_directories(dir);
  neuron_pages(dir);
  softmax_page(dir);
  shared_page(dir);
  hvp_page(dir);
  chain_page(dir);
  return 0;
}
