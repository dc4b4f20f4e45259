#!/usr/bin/env python3
"""Make the benchmark models: five MobileNets as torch.onnx.export writes them, seeded.

Usage (from anywhere):

    python3 bench/make_models.py [--out DIR] [--models NAME ...] [--check]

Needs numpy and onnx only (no torch). Each model is what torch.onnx.export
(TorchScript exporter, opset 13, eval mode, constant folding on) writes for a
MobileNet: NCHW float32 input `input` [1, 3, H, W]; Conv with bias (the
BatchNorm is folded into it); Relu (v1) or Clip(0, 6) with min/max
initializers (v2); the residual Adds of v2; GlobalAveragePool; Flatten; Gemm
(transB=1) to 1000 logits, graph output `output`.

Architectures:
- v1 (Howard et al. 2017): stem 3x3/2 conv to 32, then 13 depthwise-separable
  blocks to 64, 128/2, 128, 256/2, 256, 512/2, 512 x5, 1024/2, 1024; channels
  int(c * alpha) as the Keras reference.
- v2: torchvision's MobileNetV2 (inverted residual table t,c,n,s = 1,16,1,1 /
  6,24,2,2 / 6,32,3,2 / 6,64,4,2 / 6,96,3,1 / 6,160,3,2 / 6,320,1,1; channels
  _make_divisible(c * alpha, 8); last conv 1280 channels when alpha <= 1;
  hidden = round(in * t); residual when stride 1 and in == out).

Weights: He-normal convolutions, then a folded BatchNorm calibrated the way a
trained net's statistics would be: every conv's output is measured (numpy,
float64) on a seeded calibration input, normalized per channel, and given a
random gamma in [0.5, 1.5) and beta in [-0.2, 0.2); so activations are O(1)
through the whole net and the logits are O(1). The classifier is N(0, 1/in).

Written to DIR (default bench/out/models, gitignored):

  <name>.onnx        the model (onnx.checker full_check passes)
  <name>.input.npy   the seeded input, float32 [1, 3, H, W], N(0, 1)
  <name>.input.bin   the same values, raw float32 little-endian (for the bench crate)
  SHA256SUMS         sha256 of every file above

Everything is a function of the seeds: two runs give byte-identical files
(checked by --check against bench/models.sha256, which was written by this
script with onnx 1.23.2 / numpy 2.4.6).
"""

import argparse
import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out" / "models"
OPSET = 13
CLASSES = 1000

# name -> (arch, alpha, resolution, seed)
MODELS = {
    "v1_1.0_224": ("v1", 1.0, 224, 101),
    "v1_0.75_192": ("v1", 0.75, 192, 102),
    "v1_0.25_128": ("v1", 0.25, 128, 103),
    "v2_1.0_224": ("v2", 1.0, 224, 201),
    "v2_0.35_128": ("v2", 0.35, 128, 202),
}

V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
V2_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def make_divisible(v, divisor=8, min_value=None):
    """torchvision's _make_divisible."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ---- numpy reference ops (calibration), NCHW batch 1 as [C, H, W], float64 ----------------


def np_conv(x, w, stride, pad, group):
    c, h, wd = x.shape
    o, ig, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (wd + 2 * pad - k) // stride + 1

    def tap(ky, kx):
        return xp[:, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]

    if group == 1:
        if k == 1 and stride == 1 and pad == 0:
            cols = x.reshape(c, h * wd)
        else:
            cols = np.stack([tap(ky, kx) for ky in range(k) for kx in range(k)], axis=1).reshape(c * k * k, oh * ow)
        return (w.reshape(o, ig * k * k) @ cols).reshape(o, oh, ow)
    assert group == c == o and ig == 1, "only full and depthwise convs"
    out = np.zeros((o, oh, ow))
    for ky in range(k):
        for kx in range(k):
            out += w[:, 0, ky, kx][:, None, None] * tap(ky, kx)
    return out


class Builder:
    """Builds the graph node by node, in torch.onnx.export's naming style, and runs the same
    computation in numpy on the calibration input as it goes."""

    def __init__(self, seed, x_calib):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.k = 0
        self.x = x_calib  # current calibration activation, [C, H, W] float64

    def emit(self, op, inputs, scope, **attrs):
        parts = scope.split(".") if scope else []
        name = "/" + "".join(".".join(parts[: i + 1]) + "/" for i in range(len(parts))) + op
        name = f"{name}_{self.k}" if any(n.name == name for n in self.nodes) else name
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        self.k += 1
        return out

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def conv(self, t, cout, k, stride, dw=False):
        """Conv with a folded, calibrated BatchNorm: per output channel, the conv's output on
        the calibration input is normalized to mean 0, std 1, then scaled by gamma and shifted
        by beta (what eval-mode export of Conv + BN(running stats) gives)."""
        x = self.x
        cin = x.shape[0]
        group = cin if dw else 1
        fan_in = (cin // group) * k * k
        w = self.rng.normal(0.0, math.sqrt(2.0 / fan_in), (cout, cin // group, k, k))
        pad = k // 2
        z = np_conv(x, w, stride, pad, group)
        mean = z.mean(axis=(1, 2))
        std = np.sqrt(z.var(axis=(1, 2)) + 1e-5)
        std = np.maximum(std, 0.1 * np.median(std))  # a (rare) dead channel must not get a huge scale
        gamma = self.rng.uniform(0.5, 1.5, cout)
        beta = self.rng.uniform(-0.2, 0.2, cout)
        scale = gamma / std
        w32 = (w * scale[:, None, None, None]).astype(np.float32)
        b32 = (beta - mean * scale).astype(np.float32)
        self.x = np_conv(x, w32.astype(np.float64), stride, pad, group) + b32.astype(np.float64)[:, None, None]
        n = self.k
        ins = [t, self.init(f"onnx::Conv_{1000 + 2 * n}", w32), self.init(f"onnx::Conv_{1001 + 2 * n}", b32)]
        return ins, dict(dilations=[1, 1], group=group, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2)

    def conv_node(self, t, cout, k, stride, scope, dw=False):
        ins, attrs = self.conv(t, cout, k, stride, dw)
        return self.emit("Conv", ins, scope, **attrs)

    def relu(self, t, scope):
        self.x = np.maximum(self.x, 0.0)
        return self.emit("Relu", [t], scope)

    def relu6(self, t, scope):
        self.x = np.clip(self.x, 0.0, 6.0)
        lo = self.init(f"{scope}.clip_min_{self.k}", np.array(0.0, np.float32))
        hi = self.init(f"{scope}.clip_max_{self.k}", np.array(6.0, np.float32))
        return self.emit("Clip", [t, lo, hi], scope)

    def head(self, t, scope_pool, scope_fc):
        y = self.emit("GlobalAveragePool", [t], scope_pool)
        y = self.emit("Flatten", [y], "", axis=1)
        feat = self.x.mean(axis=(1, 2))
        cin = feat.shape[0]
        w = self.rng.normal(0.0, math.sqrt(1.0 / cin), (CLASSES, cin)).astype(np.float32)
        b = self.rng.uniform(-0.2, 0.2, CLASSES).astype(np.float32)
        ins = [y, self.init(f"{scope_fc}.weight", w), self.init(f"{scope_fc}.bias", b)]
        out = self.emit("Gemm", ins, scope_fc, alpha=1.0, beta=1.0, transB=1)
        self.x = w.astype(np.float64) @ feat + b
        return out


def v1(b, t, alpha):
    ch = lambda c: int(c * alpha)  # noqa: E731 (Keras' rounding)
    c = ch(32)
    t = b.conv_node(t, c, 3, 2, "model.0.0")
    t = b.relu(t, "model.0.1")
    for i, (cout, s) in enumerate(V1_BLOCKS, start=1):
        t = b.conv_node(t, c, 3, s, f"model.{i}.0", dw=True)
        t = b.relu(t, f"model.{i}.1")
        c = ch(cout)
        t = b.conv_node(t, c, 1, 1, f"model.{i}.3")
        t = b.relu(t, f"model.{i}.4")
    return b.head(t, "avgpool", "fc")


def v2(b, t, alpha):
    c = make_divisible(32 * alpha)
    last = make_divisible(1280 * max(1.0, alpha))
    t = b.conv_node(t, c, 3, 2, "features.0.0")
    t = b.relu6(t, "features.0.2")
    f = 1
    for e, cout, n, s in V2_TABLE:
        cout = make_divisible(cout * alpha)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(c * e))
            x_in, calib_in = t, b.x
            j = 0
            y = t
            if e != 1:
                y = b.conv_node(y, hidden, 1, 1, f"features.{f}.conv.{j}.0")
                y = b.relu6(y, f"features.{f}.conv.{j}.2")
                j += 1
            y = b.conv_node(y, hidden, 3, stride, f"features.{f}.conv.{j}.0", dw=True)
            y = b.relu6(y, f"features.{f}.conv.{j}.2")
            j += 1
            y = b.conv_node(y, cout, 1, 1, f"features.{f}.conv.{j}")
            if stride == 1 and c == cout:
                b.x = b.x + calib_in
                y = b.emit("Add", [x_in, y], f"features.{f}")
            t, c = y, cout
            f += 1
    t = b.conv_node(t, last, 1, 1, f"features.{f}.0")
    t = b.relu6(t, f"features.{f}.2")
    return b.head(t, "avgpool", "classifier.1")


def build(name):
    arch, alpha, res, seed = MODELS[name]
    rng = np.random.default_rng(seed)
    x_in = rng.standard_normal((1, 3, res, res)).astype(np.float32)  # the benchmark input
    x_calib = rng.standard_normal((3, res, res))  # the calibration input (a different draw)
    b = Builder(seed + 1000, x_calib)
    out = (v1 if arch == "v1" else v2)(b, "input", alpha)
    b.nodes[-1].output[0] = "output"
    graph = helper.make_graph(
        b.nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, res, res])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, CLASSES])],
        initializer=b.inits,
    )
    del out
    opsets = [helper.make_opsetid("", OPSET)]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="pytorch", producer_version="2.1.2",
                          ir_version=helper.find_min_ir_version_for(opsets))
    m.doc_string = f"mncc bench model {name}: MobileNet {arch} alpha {alpha} {res}x{res}, seed {seed} (bench/make_models.py)"
    onnx.checker.check_model(m, full_check=True)
    logits = b.x
    assert np.all(np.isfinite(logits)) and np.ptp(logits) > 1e-3, f"{name}: degenerate logits on the calibration input"
    return m, x_in, logits


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default bench/out/models)")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS), metavar="NAME",
                    help=f"models to make (default all: {' '.join(MODELS)})")
    ap.add_argument("--check", action="store_true",
                    help="compare the files' sha256 with bench/models.sha256 (exit 1 on a mismatch)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name in args.models:
        m, x, logits = build(name)
        files = {f"{name}.onnx": m.SerializeToString(),
                 f"{name}.input.bin": x.astype("<f4").tobytes()}
        for fname, data in files.items():
            (args.out / fname).write_bytes(data)
        np.save(args.out / f"{name}.input.npy", x)
        for fname in (f"{name}.onnx", f"{name}.input.npy", f"{name}.input.bin"):
            sums[fname] = sha256(args.out / fname)
        if not args.quiet:
            nconv = sum(n.op_type == "Conv" for n in m.graph.node)
            nparams = sum(int(np.prod(i.dims)) for i in m.graph.initializer)
            print(f"{name}: {len(m.graph.node)} nodes ({nconv} Conv), {nparams / 1e6:.2f}M parameters, "
                  f"calibration logits in [{logits.min():.2f}, {logits.max():.2f}], std {logits.std():.2f}")
    # Merge with sums of models made earlier into the same directory.
    sums_path = args.out / "SHA256SUMS"
    old = {}
    if sums_path.exists():
        for line in sums_path.read_text().splitlines():
            h, f = line.split(maxsplit=1)
            old[f.strip()] = h
    old.update(sums)
    sums_path.write_text("".join(f"{h}  {f}\n" for f, h in sorted(old.items())))
    if args.check:
        ref = {}
        for line in (HERE / "models.sha256").read_text().splitlines():
            h, f = line.split(maxsplit=1)
            ref[f.strip()] = h
        bad = [f for f, h in sums.items() if ref.get(f) != h]
        for f in bad:
            print(f"sha256 mismatch: {f}: {sums[f]} (expected {ref.get(f)})", file=sys.stderr)
        if bad:
            return 1
        if not args.quiet:
            print(f"sha256 of {len(sums)} files match bench/models.sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())
