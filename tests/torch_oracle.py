# The PyTorch side of tests/torch_oracle.hpp: reads the cases tapegrad evaluated (one safetensors
# file), redoes each expression in torch float64 on the same inputs, backpropagates the same
# L = sum_k sum(y_k * s_k), and compares values and gradients. Exit 0: all within tolerance;
# 1: some case differs (each printed); 77: PyTorch is not installed.
import json, math, struct, sys

try:
    import torch
except ImportError:
    print("skipped: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)

path, tolerance = sys.argv[1], float(sys.argv[2])
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
buffer = raw[8 + n:]
tensors = {}
for name, entry in header.items():
    if name == "__metadata__":
        continue
    begin, end = entry["data_offsets"]
    if begin == end:
        tensors[name] = torch.zeros(entry["shape"], dtype=torch.float64)
    else:
        flat = torch.frombuffer(bytearray(buffer[begin:end]), dtype=torch.float64)
        tensors[name] = flat.reshape(entry["shape"])
cases = json.loads(header["__metadata__"]["cases"])


def error(ours, theirs):
    """max |ours - theirs| / max(1, |theirs|); NaN must meet NaN, inf the same inf."""
    a = ours.reshape(-1).double()
    b = theirs.detach().reshape(-1).double()
    if a.numel() == 0:
        return 0.0
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return math.inf
    inf_a, inf_b = torch.isinf(a), torch.isinf(b)
    if not torch.equal(inf_a, inf_b) or not torch.equal(a[inf_a], b[inf_b]):
        return math.inf
    finite = ~(nan_a | inf_a)
    d = (a[finite] - b[finite]).abs() / b[finite].abs().clamp(min=1.0)
    return d.max().item() if d.numel() else 0.0


worst, failures = 0.0, []
for k, case in enumerate(cases):
    label = f"case {k} {case['name']} [{case['expr']}]"
    xs = []
    for i in range(case["inputs"]):
        x = tensors[f"c{k}.x{i}"].clone()
        if case["grad"][i]:
            x.requires_grad_(True)
        xs.append(x)
    scope = {"torch": torch, "F": torch.nn.functional, "math": math}
    scope.update({f"x{i}": x for i, x in enumerate(xs)})
    try:
        out = eval(case["expr"], scope)
    except Exception as e:  # a wrong expression is the test's bug: say so
        failures.append(f"{label}: PyTorch raised {type(e).__name__}: {e}")
        continue
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    outs = [o if torch.is_tensor(o) else torch.tensor(o, dtype=torch.float64) for o in outs]
    if len(outs) != case["outputs"]:
        failures.append(f"{label}: {len(outs)} outputs in PyTorch, {case['outputs']} in tapegrad")
        continue
    loss, problems = None, []
    for j, o in enumerate(outs):
        ours = tensors[f"c{k}.y{j}"]
        if list(o.shape) != list(ours.shape):
            problems.append(f"output {j} shape {list(ours.shape)} vs PyTorch {list(o.shape)}")
            continue
        e = error(ours, o)
        worst = max(worst, e)
        if not e <= tolerance:
            problems.append(f"output {j} value error {e:.3g}")
        if o.requires_grad:
            term = (o * tensors[f"c{k}.s{j}"]).sum()
            loss = term if loss is None else loss + term
    wanted = [i for i in range(case["inputs"]) if case["grad"][i]]
    if wanted and not problems:
        grads = [None] * len(wanted)
        if loss is not None:
            grads = torch.autograd.grad(loss, [xs[i] for i in wanted], allow_unused=True)
        for i, g in zip(wanted, grads):
            ours = tensors[f"c{k}.g{i}"]
            theirs = torch.zeros_like(ours) if g is None else g
            e = error(ours, theirs)
            worst = max(worst, e)
            if not e <= tolerance:
                problems.append(f"gradient of x{i} error {e:.3g}")
    if problems:
        failures.append(f"{label}: " + "; ".join(problems))

for line in failures:
    print(line)
print(f"torch oracle: {len(cases)} cases, {len(failures)} failed, worst error {worst:.3g}")
sys.exit(1 if failures else 0)
