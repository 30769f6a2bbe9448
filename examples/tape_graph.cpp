// The seed document's softmax + cross-entropy on one sample, seen three ways: the tape printed
// node by node, the gradients next to the closed form p - t, and a Graphviz picture of the graph.
//
//   z = W x + b      W [3, 4], x [4, 1] (a column), b [3]: 3 classes, 4 features
//   p = softmax(z)
//   L = -sum_i t_i ln p_i        t one-hot, true class k = 1
//   dL/dz = p - t,  dL/dW = (p - t) x^T,  dL/db = p - t
//
// Writes tape_graph.dot in the working directory and, when Graphviz's `dot` is on PATH,
// renders tape_graph.png and tape_graph.svg next to it. Ends with the hand-written loss's weak
// spot, ln 0, caught by anomaly mode.
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

int main() {
  using namespace tapegrad;  // NOLINT: the ops read best unqualified

  Generator gen(42);
  const Tensor w = randn({3, 4}, gen).requires_grad_();
  const Tensor b = zeros({3}).requires_grad_();
  const Tensor x = from_values({0.5, -1.0, 2.0, 0.25}, {4, 1});  // a column, for matmul
  const Tensor t = tensor({0.0, 1.0, 0.0});

  Tape tape;
  tape.keep_gradients();  // so the printout and the picture show every node's gradient
  const Tensor z = reshape(matmul(w, x), {3}) + b;
  const Tensor p = softmax(z);
  const Tensor loss = -sum(t * log(p));  // written out as the seed writes it
  loss.backward();

  fmt::print("{}\n", tape);

  fmt::print("p         {}\n", p);
  fmt::print("p - t     {}   (the seed's closed form for dL/dz)\n", p.detach() - t);
  fmt::print("dL/db     {}\n", b.grad());
  fmt::print("dL/dW     {}\n\n", w.grad());

  const std::string dot_file = "tape_graph.dot";
  write_dot(loss, dot_file,
            {{w, "W"}, {b, "b"}, {x, "x"}, {t, "t"}, {z, "z"}, {p, "p"}, {loss, "L"}});
  fmt::print("wrote {}\n", dot_file);
  if (std::system("command -v dot > /dev/null 2>&1") == 0) {
    const bool png = std::system("dot -Tpng -Gdpi=110 tape_graph.dot -o tape_graph.png") == 0;
    const bool svg = std::system("dot -Tsvg tape_graph.dot -o tape_graph.svg") == 0;
    if (png) fmt::print("wrote tape_graph.png\n");
    if (svg) fmt::print("wrote tape_graph.svg\n");
    if (!png || !svg) {
      fmt::print("dot failed; try it by hand: dot -Tpng {} -o tape_graph.png\n", dot_file);
      return 1;
    }
  } else {
    fmt::print(
        "Graphviz's 'dot' is not on PATH. Install graphviz (apt install graphviz, brew install "
        "graphviz) and run:\n  dot -Tpng {0} -o tape_graph.png\n  dot -Tsvg {0} -o "
        "tape_graph.svg\n",
        dot_file);
  }

  // The hand-written loss has a weak spot the fused cross_entropy_with_logits does not: when the
  // true class is far behind, softmax underflows to an exact 0 and ln 0 = -inf. Anomaly mode
  // stops at the first op that makes an infinity or a NaN and names the line.
  fmt::print("\nwith logits [0, 800, 1] and true class 0, under AnomalyGuard:\n");
  try {
    AnomalyGuard anomaly;
    const Tensor far = tensor({0.0, 800.0, 1.0}).requires_grad_();
    const Tensor hot = tensor({1.0, 0.0, 0.0});
    const Tensor bad = -sum(hot * log(softmax(far)));
    fmt::print("no anomaly? loss {}\n", bad);
  } catch (const AnomalyError& e) {
    fmt::print("AnomalyError: {}\n", e.what());
  }
  return 0;
}
