// Issue 16: the structured backward observer (BackwardOptions::observe) and write_html, the page
// that steps through a sweep. What a browser shows is tested by tests/browser/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tapegrad/tapegrad.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tapegrad;  // NOLINT: the ops read best unqualified
using Json = nlohmann::json;

// The JSON blob a page embeds.
Json page_data(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"tapegrad-data\">";
  const auto start = html.find(open);
  EXPECT_NE(start, std::string::npos);
  const auto end = html.find("</script>", start);
  return Json::parse(html.substr(start + open.size(), end - start - open.size()));
}

std::size_t traced_steps(const Tensor& output, std::vector<Tensor> inputs) {
  std::size_t visited = 0;
  grad(output, std::span<const Tensor>(inputs),
       {.allow_unused = true, .trace = [&](std::string_view line) {
          if (line.starts_with("node ")) ++visited;
        }});
  return visited;
}

// The sum, in sweep order, of every gradient the steps sent to box `id` (what the page adds up).
std::vector<double> sent_to(const Json& data, const std::string& id) {
  std::vector<double> total;
  for (const Json& step : data["steps"]) {
    for (const Json& sent : step["sent"]) {
      if (sent["to"] != id || sent["grad"].is_null()) continue;
      const auto values = sent["grad"]["v"].get<std::vector<double>>();
      if (total.empty()) {
        total = values;
      } else {
        for (std::size_t i = 0; i < values.size(); ++i) total[i] += values[i];
      }
    }
  }
  return total;
}

std::string box_id(const Json& data, const std::string& title) {
  for (const Json& box : data["boxes"]) {
    if (box["title"] == title) return box["id"];
  }
  ADD_FAILURE() << "no box titled " << title;
  return {};
}

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("tapegrad-viz-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
               "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(BackwardObserver, SeesEveryStepTheTraceDescribesWithGradientsInTheInputsShapes) {
  Tape tape;
  const Tensor W = tensor({{0.5, -1.0, 2.0}, {1.5, 0.25, -0.5}}).requires_grad_();
  const Tensor b = tensor({0.1, -0.2, 0.3}).requires_grad_();  // broadcast over the 2 rows
  const Tensor loss = sum(tanh(W + b));
  std::vector<std::size_t> order;
  std::vector<Shape> b_grad_shapes;
  loss.backward({.observe = [&](const BackwardStep& step) {
    order.push_back(step.index);
    EXPECT_EQ(step.input_grads.size(), step.node.inputs.size());
    for (std::size_t k = 0; k < step.node.inputs.size(); ++k) {
      if (step.node.inputs[k].same(b)) b_grad_shapes.push_back(step.input_grads[k].shape());
    }
  }});
  EXPECT_EQ(order.size(), traced_steps(loss, {W, b}));
  EXPECT_EQ(order, (std::vector<std::size_t>{2, 1, 0}));  // newest node first
  ASSERT_EQ(b_grad_shapes.size(), 1u);
  EXPECT_EQ(b_grad_shapes[0], Shape({3}));  // summed to b's shape before anyone sees it
}

TEST(WriteHtml, JsonHoldsOneStepPerVisitedNodeAndLeafGradientsEqualToGrad) {
  Tape tape;
  const Tensor w = scalar(0.7).requires_grad_(), b = scalar(0.2).requires_grad_();
  const Tensor x = scalar(1.5);
  const Tensor u = mul(w, x) + b;
  const Tensor loss = mul(u, sin(u));  // u reached twice
  const std::size_t visited = traced_steps(loss, {w, b});
  const Json data = page_data(
      to_html(loss, {.names = {{w, "w"}, {b, "b"}, {u, "u"}}, .layout = HtmlLayout::layered}));

  EXPECT_EQ(data["steps"].size(), visited);
  EXPECT_EQ(visited, 4u);
  // The page's sums are the sweep's: equal to grad() bit for bit, and to the closed form.
  const double uv = 0.7 * 1.5 + 0.2, du = std::sin(uv) + uv * std::cos(uv);
  EXPECT_EQ(sent_to(data, box_id(data, "w")), std::vector<double>{w.grad().item()});
  EXPECT_EQ(sent_to(data, box_id(data, "b")), std::vector<double>{b.grad().item()});
  EXPECT_NEAR(w.grad().item(), du * 1.5, 1e-12);
  EXPECT_NEAR(b.grad().item(), du, 1e-12);
  // u gets two contributions, sin(u) from the product and u cos(u) through sin.
  const std::string u_id = box_id(data, "u");
  std::vector<double> contributions;
  for (const Json& step : data["steps"]) {
    for (const Json& sent : step["sent"]) {
      if (sent["to"] == u_id) contributions.push_back(sent["grad"]["v"][0]);
    }
  }
  ASSERT_EQ(contributions.size(), 2u);
  EXPECT_NEAR(contributions[0], std::sin(uv), 1e-12);
  EXPECT_NEAR(contributions[1], uv * std::cos(uv), 1e-12);
}

TEST(WriteHtml, LocalDerivativeIsTheRuleAtGEqualOne) {
  Tape tape;
  const Tensor z = tensor({-1.0, 0.5, 2.0}).requires_grad_();
  const Tensor loss = sum(sigmoid(z) * 3.0);
  const Json data = page_data(to_html(loss, {.layout = HtmlLayout::layered}));
  bool seen = false;
  for (const Json& step : data["steps"]) {
    const std::string id = step["node"];
    for (const Json& box : data["boxes"]) {
      if (box["id"] != id || box["op"] != "sigmoid") continue;
      seen = true;
      const auto local = step["sent"][0]["local"]["v"].get<std::vector<double>>();
      for (std::size_t i = 0; i < 3; ++i) {
        const double a = 1.0 / (1.0 + std::exp(-z.values()[i]));
        EXPECT_NEAR(local[i], a * (1 - a), 1e-14);  // sigma'(z), not g sigma'(z)
        EXPECT_NEAR(step["sent"][0]["grad"]["v"][i].get<double>(), 3.0 * a * (1 - a), 1e-14);
      }
    }
  }
  EXPECT_TRUE(seen);
}

TEST(WriteHtml, UnwritablePathIsAValueErrorNamingWriteHtmlAndThePathBeforeTheSweep) {
  Tape tape;
  const Tensor w = scalar(2.0).requires_grad_();
  const Tensor loss = w * w;
  const std::string path = "/nonexistent-dir-tapegrad/page.html";
  try {
    write_html(loss, path);
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("write_html"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(w.grad().defined());  // the sweep did not run
}

TEST(WriteHtml, FailedExportLeavesTheOldFileWholeAndNoTemporaryBehind) {
  const TempDir dir;
  const fs::path page = dir.path() / "page.html";
  std::ofstream(page) << "the old page";
  Tape tape;
  const Tensor w = tensor({1.0, 2.0}).requires_grad_();
  const Tensor not_scalar = w * w;  // backward needs a seed: the sweep throws mid-export
  EXPECT_THROW(write_html(not_scalar, page.string()), AutogradError);
  std::stringstream content;
  content << std::ifstream(page).rdbuf();
  EXPECT_EQ(content.str(), "the old page");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);

  // With a seed the same export succeeds and replaces the file whole.
  write_html(not_scalar, page.string(), {.seed = tensor({1.0, 1.0})});
  content.str("");
  content << std::ifstream(page).rdbuf();
  EXPECT_EQ(content.str().rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(content.str().substr(content.str().size() - 8), "</html>\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  EXPECT_EQ(page_data(content.str())["steps"].size(), 1u);
}

void expect_self_contained(const std::string& html, const Json& data) {
  for (const char* bad : {"http:", "https:", "//", "src="}) {
    EXPECT_EQ(html.find(bad), std::string::npos) << "page holds " << bad;
  }
  for (const Json& box : data["boxes"]) {
    EXPECT_NE(html.find("id=\"n_" + box["id"].get<std::string>() + "\""), std::string::npos)
        << box["id"];
  }
}

TEST(WriteHtml, PageIsSelfContainedInBothLayouts) {
  Tape tape;
  Tensor w = tensor({0.5, -1.0}).requires_grad_();
  const Tensor loss = sum(exp(w) * w);
  const std::string layered = to_html(loss, {.layout = HtmlLayout::layered});
  EXPECT_EQ(page_data(layered)["layout"], "layered");
  expect_self_contained(layered, page_data(layered));
  if (std::system("command -v dot > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "graphviz (dot) is not installed: the graphviz layout is not checked";
  }
  w.zero_grad();
  const std::string drawn = to_html(loss, {.layout = HtmlLayout::graphviz});
  EXPECT_EQ(page_data(drawn)["layout"], "graphviz");
  expect_self_contained(drawn, page_data(drawn));
}

TEST(WriteHtml, NodesACreateGraphBackwardRecordedHaveTheirOwnKind) {
  Tape tape;
  const Tensor z = tensor({1.0, -0.5, 2.0}).requires_grad_();
  const Tensor t = tensor({0.0, 0.0, 1.0}), v = tensor({1.0, 0.0, 0.0});
  const Tensor loss = -sum(t * log(softmax(z)));
  const std::size_t first = tape.size();
  const Tensor g = grad(loss, {z}, {.create_graph = true})[0];
  const std::size_t last = tape.size();
  const Tensor gv = sum(g * v);
  const Json data = page_data(to_html(gv, {.backward_recorded = {first, last}}));
  std::size_t back = 0;
  for (const Json& box : data["boxes"]) {
    const std::string id = box["id"];
    if (id[0] != 't') continue;
    const std::size_t index = std::stoul(id.substr(1));
    EXPECT_EQ(box["kind"] == "back", index >= first && index < last) << id;
    back += box["kind"] == "back";
  }
  EXPECT_GT(back, 0u);
  // z's gradient is H v = (diag(p) - p p^T) v, the Hessian's first column here.
  const Tensor p = softmax(z.detach());
  for (std::size_t i = 0; i < 3; ++i) {
    const double h = (i == 0 ? p.values()[0] : 0.0) - p.values()[i] * p.values()[0];
    EXPECT_NEAR(z.grad().values()[i], h, 1e-12);
  }
  EXPECT_EQ(sent_to(data, box_id(data, "leaf#0")),
            std::vector<double>(z.grad().values().begin(), z.grad().values().end()));
}

}  // namespace
