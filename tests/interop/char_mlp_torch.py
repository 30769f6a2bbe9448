# PyTorch float64 replays one char_mlp training step written by tapegrad (tests/test_char_mlp.cpp,
# TorchParity.CharMlpForwardBackward): it loads the initial weights into makemore's MLP module
# (nn.Embedding + nn.Sequential(Linear, Tanh, Linear); strict load_state_dict, so every name and
# shape must match), runs F.cross_entropy on the same batch, backpropagates, and compares the loss
# and every parameter gradient with tapegrad's. A stdlib safetensors reader, as torch_load.py,
# because the safetensors package is not in Debian.
#
#   usage: char_mlp_torch.py FILE.safetensors
# The file holds the parameters under their names, "batch.contexts" [B, block], "batch.targets"
# [B], tapegrad's "loss" [1] and "grad.<name>" for each parameter. The error of a tensor is
# max_i |ours_i - torch_i| / max_i |torch_i| (relative to the tensor's largest entry). Prints
# one line per tensor and "worst relative error E"; exits 77 (skip) without torch.
import json, struct, sys
try:
    import torch
except ImportError:
    print("skipped: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)

path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
buffer = raw[8 + n:]
meta = header.pop("__metadata__", {})
tensors = {}
for name, entry in header.items():
    assert entry["dtype"] == "F64", name
    begin, end = entry["data_offsets"]
    tensors[name] = torch.frombuffer(bytearray(buffer[begin:end]),
                                     dtype=torch.float64).reshape(entry["shape"])

vocab, block = int(meta["vocab_size"]), int(meta["block_size"])
n_embd, n_hidden = int(meta["n_embd"]), int(meta["n_hidden"])


class MLP(torch.nn.Module):  # makemore's MLP, without its extra <BLANK> token
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, n_embd)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(block * n_embd, n_hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(n_hidden, vocab))

    def forward(self, idx):
        return self.mlp(self.wte(idx).view(idx.shape[0], -1))


model = MLP().double()
state = {k: v for k, v in tensors.items() if not k.startswith(("grad.", "batch.", "loss"))}
model.load_state_dict(state, strict=True)
contexts = tensors["batch.contexts"].long()
targets = tensors["batch.targets"].long()
loss = torch.nn.functional.cross_entropy(model(contexts), targets)
loss.backward()


def error(ours, theirs):
    scale = theirs.abs().max().item()
    return (ours - theirs).abs().max().item() / (scale if scale > 0 else 1.0)


worst = error(tensors["loss"].reshape(()), loss.detach())
print(f"loss tapegrad {tensors['loss'].item():.17g} torch {loss.item():.17g} error {worst:.3g}")
for name, p in model.named_parameters():
    e = error(tensors["grad." + name], p.grad)
    print(f"grad {name} {list(p.shape)} error {e:.3g}")
    worst = max(worst, e)
print(f"worst relative error {worst:.6g}")
