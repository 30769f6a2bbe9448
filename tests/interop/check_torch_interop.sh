#!/usr/bin/env bash
# A checkpoint written by tapegrad loads into the same PyTorch model and gives the same test
# accuracy. Skips (exit 77) when PyTorch (Debian python3-torch) or the dataset is missing.
set -euo pipefail
fashion_mnist=$1
shift  # the rest: the model's options (default: a small MLP)
model_options=("$@")
[ ${#model_options[@]} -eq 0 ] && model_options=(--hidden 48,24)
here=$(cd "$(dirname "$0")" && pwd)
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "skipped: PyTorch is not installed (apt-get install python3-torch)"; exit 77
fi
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"; exit 77
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# 1000 training images and the first 2000 test images: equal accuracies on 2000 images still catch
# any mismatch in a name, a layout or a layer, and keep the CNN's PyTorch evaluation quick for CI.
test_limit=2000
ours=$("$fashion_mnist" --train-limit 1000 --test-limit "$test_limit" --epochs 1 "${model_options[@]}" \
  --save "$scratch/m.safetensors" | sed -n 's/.*test accuracy \(0\.[0-9]*\)$/\1/p' | tail -1)
theirs=$(/usr/bin/python3 "$here/torch_load.py" "$scratch/m.safetensors" "$test_limit" |
  sed -n 's/^pytorch test accuracy \(0\.[0-9]*\)$/\1/p')
echo "tapegrad test accuracy $ours, pytorch test accuracy $theirs"
[ -n "$ours" ] && [ "$ours" = "$theirs" ] && echo "interop: same accuracy"
