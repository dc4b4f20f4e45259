#!/usr/bin/env python3
"""Convert the Keras MobileNet v1 (alpha 0.25, 224) ONNX model to mncc safetensors.

Usage (from the repository root):

    python3 examples/models/convert_keras_v1.py \
        [--onnx PATH (default ../shared/models/keras_mobilenet_v1_0.25_224.onnx)] \
        [--out PATH  (default examples/models/mobilenet_v1_0.25_224.safetensors)]

Default paths are resolved against the repository root, explicit ones against the
current directory.

The input is the Keras Applications MobileNet (ImageNet weights) exported by
tf2onnx 1.16.1 (opset 13, NCHW input). In that graph BatchNorm is already folded
into the conv weights and biases, ReLU6 is `Clip(x, 0, 6)`, every stride-2
depthwise conv is preceded by an explicit `Pad` (0 at top/left, 1 at
bottom/right; Keras "valid" padding after ZeroPadding2D), and the first conv
carries asymmetric pads [0, 0, 1, 1] (TF "same" padding for stride 2).

Output tensor names follow mncc's convention for MobileNet v1:

    conv1, conv_dw_{i}, conv_pw_{i} (i = 1..13), classifier

with `L.weight` in OIHW layout ([out, in/groups, kh, kw]; depthwise [C, 1, 3, 3]),
`L.bias` [out], and `classifier.weight` [classes, C], `classifier.bias` [classes].
(Models with unfolded BatchNorm would also carry `L.bn.weight`, `L.bn.bias`,
`L.bn.running_mean`, `L.bn.running_var`; this one has none.)

The structure of the graph is checked node by node before anything is written;
any mismatch aborts with a message naming the node. The output is deterministic.
"""

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ONNX = REPO_ROOT / ".." / "shared" / "models" / "keras_mobilenet_v1_0.25_224.onnx"
DEFAULT_OUT = REPO_ROOT / "examples" / "models" / "mobilenet_v1_0.25_224.safetensors"

NUM_CLASSES = 1000

# Expected MobileNet v1 alpha 0.25 layers, in graph order:
# (mncc name, Keras layer name in the ONNX node name, kind, in_ch, out_ch, stride)
# kind: "full" (3x3 dense conv), "dw" (3x3 depthwise), "pw" (1x1), "classifier".
_BLOCKS = [  # (pointwise out channels, depthwise stride) for blocks 1..13
    (16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2),
    (128, 1), (128, 1), (128, 1), (128, 1), (128, 1),
    (256, 2), (256, 1),
]


def expected_layers():
    layers = [("conv1", "conv1", "full", 3, 8, 2)]
    ch = 8
    for i, (out, stride) in enumerate(_BLOCKS, start=1):
        layers.append((f"conv_dw_{i}", f"conv_dw_{i}", "dw", ch, ch, stride))
        layers.append((f"conv_pw_{i}", f"conv_pw_{i}", "pw", ch, out, 1))
        ch = out
    layers.append(("classifier", "conv_preds", "classifier", ch, NUM_CLASSES, 1))
    return layers


class StructureError(Exception):
    pass


def check(cond, msg):
    # Explicit checks rather than `assert`, so `python3 -O` cannot skip them.
    if not cond:
        raise StructureError(msg)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def convert(onnx_path):
    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}

    convs = [n for n in graph.node if n.op_type == "Conv"]
    layers = expected_layers()
    check(len(convs) == len(layers) == 28,
          f"expected 28 Conv nodes, found {len(convs)}")

    tensors = {}
    summary = []
    pad_nodes = []
    prev_out = None
    for node, (name, keras, kind, cin, cout, stride) in zip(convs, layers):
        where = f"{name} (ONNX node '{node.name}')"
        check(f"/{keras}/" in node.name,
              f"{where}: expected a node of Keras layer '{keras}'")
        check(len(node.input) == 3 and all(node.input[1:]),
              f"{where}: expected 3 inputs (x, weight, bias), got {list(node.input)}")
        w_name, b_name = node.input[1], node.input[2]
        check(w_name in inits and b_name in inits,
              f"{where}: weight/bias are not initializers")
        w, b = inits[w_name], inits[b_name]
        check(w.dtype == np.float32 and b.dtype == np.float32,
              f"{where}: expected float32 weights, got {w.dtype}/{b.dtype}")

        a = attrs(node)
        unknown = set(a) - {"dilations", "strides", "kernel_shape", "pads", "group", "auto_pad"}
        check(not unknown, f"{where}: unexpected attributes {sorted(unknown)}")
        auto_pad = a.get("auto_pad", b"NOTSET")
        check(auto_pad in (b"NOTSET", "NOTSET"), f"{where}: auto_pad={auto_pad!r}")
        check(list(a.get("dilations", [1, 1])) == [1, 1], f"{where}: dilations {a.get('dilations')}")
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        group = a.get("group", 1)
        k = 1 if kind in ("pw", "classifier") else 3
        check(list(a.get("kernel_shape", w.shape[2:])) == [k, k],
              f"{where}: kernel_shape {a.get('kernel_shape')}, expected [{k}, {k}]")
        check(strides == [stride, stride], f"{where}: strides {strides}, expected [{stride}, {stride}]")

        if kind == "dw":
            check(group == cin == cout, f"{where}: group {group}, expected {cin} (depthwise)")
            check(w.shape == (cout, 1, 3, 3), f"{where}: weight shape {w.shape}, expected ({cout}, 1, 3, 3)")
        else:
            check(group == 1, f"{where}: group {group}, expected 1")
            check(w.shape == (cout, cin, k, k),
                  f"{where}: weight shape {w.shape}, expected ({cout}, {cin}, {k}, {k})")
        check(b.shape == (cout,), f"{where}: bias shape {b.shape}, expected ({cout},)")

        # Padding: where it comes from and what it is.
        x = node.input[0]
        src = producer.get(x)
        if name == "conv1":
            check(x == graph.input[0].name, f"{where}: input is not the graph input")
            check(pads == [0, 0, 1, 1], f"{where}: pads {pads}, expected [0, 0, 1, 1]")
            pad_desc = "attr t,l,b,r = 0,0,1,1"
        elif kind == "dw" and stride == 2:
            check(pads == [0, 0, 0, 0], f"{where}: pads {pads}, expected none (explicit Pad before)")
            check(src is not None and src.op_type == "Pad",
                  f"{where}: stride-2 depthwise conv is not preceded by a Pad node")
            pa = attrs(src)
            mode = pa.get("mode", b"constant")
            check(mode in (b"constant", "constant"), f"{where}: Pad '{src.name}' mode {mode!r}")
            check(len(src.input) >= 2 and src.input[1] in inits,
                  f"{where}: Pad '{src.name}' pads are not an initializer")
            ppads = [int(v) for v in inits[src.input[1]].reshape(-1)]
            # ONNX order: [x1_begin, x2_begin, x3_begin, x4_begin, x1_end, ...] over N, C, H, W.
            check(ppads == [0, 0, 0, 0, 0, 0, 1, 1],
                  f"{where}: Pad '{src.name}' pads {ppads}, expected [0,0,0,0, 0,0,1,1] "
                  "(zeros at top/left, 1 at bottom/right)")
            if len(src.input) >= 3 and src.input[2]:
                cv = inits.get(src.input[2])
                check(cv is not None and float(cv.reshape(-1)[0]) == 0.0,
                      f"{where}: Pad '{src.name}' constant value is not 0")
            pad_nodes.append(src.name)
            x = src.input[0]
            src = producer.get(x)
            pad_desc = "Pad node t,l,b,r = 0,0,1,1"
        elif kind == "dw":
            check(pads == [1, 1, 1, 1], f"{where}: pads {pads}, expected [1, 1, 1, 1]")
            pad_desc = "attr t,l,b,r = 1,1,1,1"
        else:
            check(pads == [0, 0, 0, 0], f"{where}: pads {pads}, expected [0, 0, 0, 0]")
            pad_desc = "-"

        # Chaining: every conv after the first reads the previous conv's ReLU6
        # (the classifier reads GlobalAveragePool -> Reshape of it).
        if name != "conv1":
            if kind == "classifier":
                check(src is not None and src.op_type == "Reshape",
                      f"{where}: input is not a Reshape")
                gap = producer.get(src.input[0])
                check(gap is not None and gap.op_type == "GlobalAveragePool",
                      f"{where}: Reshape input is not GlobalAveragePool")
                src = producer.get(gap.input[0])
            check(src is not None and src.op_type == "Clip" and src.input[0] == prev_out,
                  f"{where}: input is not Clip(previous conv)")
            lo, hi = (float(inits[src.input[i]]) for i in (1, 2))
            check((lo, hi) == (0.0, 6.0), f"{where}: Clip bounds ({lo}, {hi}), expected (0, 6)")
        prev_out = node.output[0]

        if kind == "classifier":
            w = w.reshape(cout, cin)
        tensors[f"{name}.weight"] = np.ascontiguousarray(w, dtype="<f4")
        tensors[f"{name}.bias"] = np.ascontiguousarray(b, dtype="<f4")
        summary.append((name, kind, tuple(tensors[f"{name}.weight"].shape), stride, group,
                        pad_desc, w.size + b.size))

    check(len(pad_nodes) == 4 and len(set(pad_nodes)) == 4,
          f"expected 4 Pad nodes before stride-2 depthwise convs, found {pad_nodes}")
    check(sum(n.op_type == "Pad" for n in graph.node) == 4, "extra Pad nodes in the graph")
    return tensors, summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", type=Path, default=DEFAULT_ONNX,
                   help="Keras MobileNet v1 0.25 ONNX model (default: ../shared/models/"
                        "keras_mobilenet_v1_0.25_224.onnx)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output safetensors (default: examples/models/"
                        "mobilenet_v1_0.25_224.safetensors)")
    args = p.parse_args(argv)

    try:
        tensors, summary = convert(args.onnx)
    except StructureError as e:
        print(f"error: {args.onnx}: unexpected model structure: {e}", file=sys.stderr)
        return 1

    digest = hashlib.sha256(args.onnx.read_bytes()).hexdigest()
    source = (
        "Keras Applications MobileNet v1 alpha 0.25 224x224, ImageNet weights (Apache-2.0), "
        "exported by tf2onnx 1.16.1 (opset 13, BatchNorm folded into conv biases) as "
        f"keras_mobilenet_v1_0.25_224.onnx (sha256 {digest}); converted by "
        "examples/models/convert_keras_v1.py"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"source": source})

    print(f"{'layer':<12} {'kind':<10} {'weight':<18} {'stride':>6} {'groups':>6}  {'padding':<26} {'params':>7}")
    for name, kind, shape, stride, group, pad_desc, n in summary:
        print(f"{name:<12} {kind:<10} {str(list(shape)):<18} {stride:>6} {group:>6}  {pad_desc:<26} {n:>7}")
    total = sum(s[-1] for s in summary)
    print(f"{len(summary)} conv layers, {len(tensors)} tensors, {total} parameters")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
