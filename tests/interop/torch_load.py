# Loads a tapegrad safetensors checkpoint (MLP or CNN) into PyTorch's own nn.Sequential (strict: every name
# and shape must match), then evaluates it on the Fashion-MNIST test set with PyTorch. A stdlib
# reader, because the safetensors package is not in Debian. An optional second argument evaluates the
# first N test images only (as fashion_mnist --test-limit N).
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
meta = header["__metadata__"]


def build_cnn(words):
    """The layer list tapegrad wrote ("conv2d 1 16 5 2;relu;..."), as torch.nn modules."""
    layers = []
    for word in words.split(";"):
        kind, *args = word.split()
        if kind == "conv2d":
            i, o, k, p = map(int, args)
            layers.append(torch.nn.Conv2d(i, o, k, padding=p))
        elif kind == "batchnorm2d":
            layers.append(torch.nn.BatchNorm2d(int(args[0])))
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "maxpool2d":
            layers.append(torch.nn.MaxPool2d(int(args[0])))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "linear":
            layers.append(torch.nn.Linear(int(args[0]), int(args[1])))
        elif kind == "dropout":
            layers.append(torch.nn.Dropout(float(args[0])))
        else:
            raise SystemExit(f"unknown layer {word!r}")
    return torch.nn.Sequential(*layers)


cnn = meta.get("model") == "cnn"
if cnn:
    model = build_cnn(meta["architecture"]).double()
else:
    sizes = [784] + [int(s) for s in meta["hidden"].split(",")] + [10]
    layers = []
    for i in range(len(sizes) - 1):
        layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).double()
model.load_state_dict(state, strict=True)
model.eval()


def idx(p):
    d = gzip.open(p).read()
    ndim = d[3]
    dims = struct.unpack(">" + "I" * ndim, d[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(d[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)
root = "/usr/share/datasets/fashion-mnist/"
x = idx(root + "t10k-images-idx3-ubyte.gz").reshape(-1, 784).double() / 255.0
x = (x - 0.28604059698879547) / 0.35302424451492254
y = idx(root + "t10k-labels-idx1-ubyte.gz").long()
if len(sys.argv) > 2 and int(sys.argv[2]) > 0:
    x, y = x[:int(sys.argv[2])], y[:int(sys.argv[2])]
if cnn:
    x = x.reshape(-1, 1, 28, 28)
with torch.no_grad():
    predicted = torch.cat([model(b).argmax(1) for b in x.split(500)])
    accuracy = (predicted == y).double().mean().item()
print(f"pytorch test accuracy {accuracy:.4f}")
