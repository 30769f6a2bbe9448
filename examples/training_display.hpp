#pragma once
// What the training examples share on screen and on disk: a progress line redrawn in place on a
// terminal, and a gnuplot PNG drawn from a metrics CSV. Header-only; moved out of
// examples/fashion_mnist.cpp so that every trainer shows its run the same way.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

namespace display {

// True when standard output is a terminal: only then is the progress line drawn (a log file or
// a pipe gets the per-interval lines alone, not hundreds of carriage returns).
inline bool stdout_is_terminal() {
  return isatty(fileno(stdout)) != 0;
}

// True when gnuplot is on the PATH (a PNG can be drawn now, not only its script written).
inline bool have_gnuplot() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

// One line redrawn in place: "<label> [#####.....] done/total <detail>".
inline void draw_progress(std::string_view label, std::size_t done, std::size_t total,
                          std::string_view detail) {
  constexpr int width = 30;
  const int filled = static_cast<int>(width * done / std::max<std::size_t>(total, 1));
  fmt::print("\r\033[2K{} [{}{}] {}/{} {}", label,
             std::string(static_cast<std::size_t>(filled), '#'),
             std::string(static_cast<std::size_t>(width - filled), '.'), done, total, detail);
  std::fflush(stdout);
}

// Erases the progress line, so the next print starts on a clean line.
inline void clear_progress() {
  fmt::print("\r\033[2K");
}

// One curve of a plot: CSV column `y` (1-based, gnuplot's `using x:y`) against column `x`.
struct Curve {
  int x = 1;
  int y = 2;
  std::string title;
  std::string style = "linespoints";  // gnuplot's "with ...": lines, linespoints, points
  bool right_axis = false;            // on the y2 axis (needs Axes::y2label)
};

struct Axes {
  std::string title, xlabel, ylabel;
  std::string y2label;  // empty: no second y axis
  std::string key = "top left";
};

// Writes `png`.gp, a gnuplot script drawing `curves` from the CSV `csv` (comma separated, one
// header line; an empty field is a missing point), and runs gnuplot on it. Titles are plain
// text (noenhanced: "char_mlp" is not a subscript). Without gnuplot the script is kept and the user
// told how to draw it later; a run never fails for want of a plot.
inline void write_plot(const std::string& csv, const std::string& png, const Axes& axes,
                       const std::vector<Curve>& curves) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    fmt::print("gnuplot is not installed: apt-get install gnuplot-nox, then run the script {}.gp\n",
               png);
  }
  const std::string script = png + ".gp";
  std::ofstream gp(script);
  gp << "set terminal pngcairo size 900,500 noenhanced\nset output '" << png << "'\n"
     << "set datafile separator ','\nset key " << axes.key << "\nset grid\n"
     << "set title '" << axes.title << "'\nset xlabel '" << axes.xlabel << "'\nset ylabel '"
     << axes.ylabel << "'\n";
  if (!axes.y2label.empty()) {
    gp << "set y2label '" << axes.y2label << "'\nset y2tics\nset ytics nomirror\n";
  }
  for (std::size_t i = 0; i < curves.size(); ++i) {
    const Curve& c = curves[i];
    gp << (i == 0 ? "plot " : "     ") << "'" << csv << "' using " << c.x << ":" << c.y
       << (c.right_axis ? " axes x1y2" : "") << " with " << c.style << " title '" << c.title << "'"
       << (i + 1 < curves.size() ? ", \\\n" : "\n");
  }
  gp.close();
  if (std::system(fmt::format("gnuplot '{}'", script).c_str()) == 0) {
    fmt::print("wrote {}\n", png);
  } else {
    fmt::print("gnuplot failed; the script is {}\n", script);
  }
}

}  // namespace display
