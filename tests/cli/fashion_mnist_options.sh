#!/usr/bin/env bash
# fashion_mnist checks every option before it reads data or writes a file: each bad command line
# below must exit non-zero within seconds, say what is wrong (the expected text), print no
# "training" line, and leave the directory as it was. Then --dry-run with good options exits 0,
# still writing nothing. Usage: fashion_mnist_options.sh <fashion_mnist binary> [data dir]
set -uo pipefail
program=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
data_dir=${2:-/usr/share/datasets/fashion-mnist}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 1
failures=0
count=0

expect_rejected() {  # <expected text> <arguments...>
  local expected=$1 output status
  shift
  count=$((count + 1))
  output=$(timeout 20 "$program" "$@" 2>&1)
  status=$?
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || ! grep -qF -- "$expected" <<<"$output" ||
    grep -q '^training' <<<"$output" || [ -n "$(ls -A)" ]; then
    echo "FAILED: fashion_mnist $* (exit $status; wanted non-zero and '$expected'; files: $(ls -A | tr '\n' ' '))"
    echo "$output" | sed 's/^/    /'
    failures=$((failures + 1))
    rm -rf ./* ./.[!.]* 2>/dev/null
  else
    echo "ok (exit $status): fashion_mnist $*  ->  $(head -n 1 <<<"$output")"
  fi
}

expect_rejected "--epochs: '0' is not a whole number" --epochs 0
expect_rejected "--epochs: 'x' is not a whole number" --epochs x
expect_rejected "--batch-size: '-3' is not a whole number" --batch-size -3
expect_rejected "--train-limit: '-1' is not a whole number" --train-limit -1
expect_rejected "--seed: '-1' is not a whole number" --seed -1
expect_rejected "--lr: 'inf' is not a positive finite number" --lr inf
expect_rejected "--lr: 'nan' is not a positive finite number" --lr nan
expect_rejected "--lr: '0' is not a positive finite number" --lr 0
expect_rejected "--optimizer: adamw not in {adam,sgd}" --optimizer adamw
expect_rejected "--loss: hinge not in {ce,mse}" --loss hinge
expect_rejected "--hidden 256,abc: 'abc' is not a layer size" --hidden 256,abc
expect_rejected "--hidden 256,: give the hidden layer sizes" --hidden 256,
expect_rejected "--hidden 0: '0' is not a layer size" --hidden 0
expect_rejected "--hidden : give the hidden layer sizes" --hidden ""
expect_rejected "--data-dir /nonexistent/fashion: no such directory" --data-dir /nonexistent/fashion
expect_rejected "--save /nonexistent/m.safetensors: the directory /nonexistent does not exist" \
  --save /nonexistent/m.safetensors
expect_rejected "--save $scratch: it is a directory" --save "$scratch"
expect_rejected "--save /etc/passwd/m.safetensors: /etc/passwd is not a directory" \
  --save /etc/passwd/m.safetensors
expect_rejected "--metrics /proc/m.csv: cannot write it" --metrics /proc/m.csv
expect_rejected "--plot ce.png: needs --metrics" --plot ce.png
expect_rejected "--plot ce.svg: the plot is a PNG" --metrics ce.csv --plot ce.svg
expect_rejected "--metrics ce.csv: is also --plot" --metrics ce.csv --plot ./ce.csv
# A good --metrics next to a bad --save: nothing may be written, not even the metrics header.
expect_rejected "--save /nonexistent/m.safetensors" --metrics ok.csv --save /nonexistent/m.safetensors
expect_rejected "--load /nonexistent.safetensors: no such file" --load /nonexistent.safetensors
expect_rejected "--epochs excludes --load" --load m.safetensors --epochs 3
expect_rejected "--save excludes --load" --load m.safetensors --save n.safetensors
expect_rejected "The following argument was not expected: --no-such-option" --no-such-option

if [ -d "$data_dir" ]; then
  count=$((count + 1))
  output=$(timeout 60 "$program" --data-dir "$data_dir" --epochs 2 --train-limit 100 \
    --metrics m.csv --plot m.png --save m.safetensors --dry-run 2>&1)
  status=$?
  if [ "$status" -ne 0 ] || ! grep -q 'stopping before training' <<<"$output" || [ -n "$(ls -A)" ]; then
    echo "FAILED: --dry-run with good options (exit $status; files: $(ls -A | tr '\n' ' '))"
    echo "$output" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok (exit 0): --dry-run with good options -> $(tail -n 1 <<<"$output")"
  fi

  # The paths that passed the checks are then really written, and --load --dry-run reads them back.
  count=$((count + 1))
  output=$(timeout 120 "$program" --data-dir "$data_dir" --epochs 1 --train-limit 64 \
    --hidden 16 --metrics m.csv --plot m.png --save m.safetensors 2>&1 &&
    timeout 60 "$program" --data-dir "$data_dir" --load m.safetensors --dry-run 2>&1)
  status=$?
  if [ "$status" -ne 0 ] || [ ! -s m.safetensors ] || [ ! -s m.csv ] ||
    ! grep -q 'm.safetensors loads into 784-16-10' <<<"$output"; then
    echo "FAILED: a short run with --save/--metrics/--plot, then --load --dry-run (exit $status)"
    echo "$output" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok (exit 0): a short run writes $(ls m.* | tr '\n' ' ')and --load --dry-run reads it"
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "fashion_mnist options: $failures of $count checks FAILED"
  exit 1
fi
echo "fashion_mnist options: all $count checks passed"
