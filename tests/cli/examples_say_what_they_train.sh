#!/usr/bin/env bash
# xor and fit_sine start with one line saying what they train (the network, the data, the loss,
# the optimizer); fit_sine's plot script has a title, axis labels and the error curve, and with
# gnuplot installed the PNG is written. Usage: examples_say_what_they_train.sh <examples dir>
set -euo pipefail
bin=$(cd "$1" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
fail() {
  echo "FAILED: $*"
  exit 1
}
first=$("$bin/xor" | head -n 1)
grep -qE '^training Linear\(2 -> 4\) -> Tanh -> Linear\(4 -> 1\) \(17 parameters\) on the 4 XOR points.*loss bce_with_logits; Adam lr 0.05; 1000 steps$' <<<"$first" ||
  fail "xor's first line: $first"
echo "xor: $first"
"$bin/fit_sine" >fit_sine.out
first=$(head -n 1 fit_sine.out)
grep -qE '^training Linear\(1 -> 32\) -> Tanh -> Linear\(32 -> 32\) -> Tanh -> Linear\(32 -> 1\) \(1153 parameters\) on 200 points x in \[-pi, pi\] with target sin\(x\).*loss mse; Adam lr 0.01.*2000 steps$' <<<"$first" ||
  fail "fit_sine's first line: $first"
echo "fit_sine: $first"
head -n 1 fit_sine.csv | grep -qx 'x,target,fit,error' || fail "fit_sine.csv header: $(head -n 1 fit_sine.csv)"
for want in "multiplot layout 2,1 title 'Fitting sin(x)" "set xlabel 'x'" "set ylabel 'y'" \
  "set ylabel 'fit - sin(x)'" "using 1:4" "title 'target sin(x)'" "title 'MLP fit'"; do
  grep -qF -- "$want" fit_sine.gp || fail "fit_sine.gp has no \"$want\""
done
if command -v gnuplot >/dev/null; then
  [ -s fit_sine.png ] || fail "gnuplot is installed but fit_sine.png was not written"
  grep -q 'wrote fit_sine.png' fit_sine.out || fail "fit_sine did not say it wrote the PNG"
fi
echo "examples: xor and fit_sine say what they train; fit_sine's plot has a title, labels and the error"
