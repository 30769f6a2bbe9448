#pragma once
// The page write_html fills in: @TITLE@ (twice), @NOTE@, @LINKS@, @SVG@, @DATA@ (the JSON blob).
#include <string_view>

namespace tapegrad::viz {
std::string_view page_template();
}  // namespace tapegrad::viz
