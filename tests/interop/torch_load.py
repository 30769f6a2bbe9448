# Loads a tapegrad safetensors checkpoint into PyTorch's own nn.Sequential (strict: every name
# and shape must match), then evaluates it on the Fashion-MNIST test set with PyTorch. A stdlib
# reader, because the safetensors package is not in Debian.
import gzip, json, struct, sys
import torch
path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
buffer = raw[8 + n:]
dtypes = {"F64": torch.float64, "F32": torch.float32}
state = {}
for name, entry in header.items():
    if name == "__metadata__":
        continue
    begin, end = entry["data_offsets"]
    t = torch.frombuffer(bytearray(buffer[begin:end]), dtype=dtypes[entry["dtype"]])
    state[name] = t.reshape(entry["shape"])
sizes = [784] + [int(s) for s in header["__metadata__"]["hidden"].split(",")] + [10]
layers = []
for i in range(len(sizes) - 1):
    layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
model = torch.nn.Sequential(*layers[:-1]).double()
model.load_state_dict(state, strict=True)
def idx(p):
    d = gzip.open(p).read()
    ndim = d[3]
    dims = struct.unpack(">" + "I" * ndim, d[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(d[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)
root = "/usr/share/datasets/fashion-mnist/"
x = idx(root + "t10k-images-idx3-ubyte.gz").reshape(-1, 784).double() / 255.0
x = (x - 0.28604059698879547) / 0.35302424451492254
y = idx(root + "t10k-labels-idx1-ubyte.gz").long()
with torch.no_grad():
    accuracy = (model(x).argmax(1) == y).double().mean().item()
print(f"pytorch test accuracy {accuracy:.4f}")
