#!/usr/bin/env python3
"""Convert a benchmark ONNX model to a float32 TFLite model (NHWC), deterministically.

Usage (from anywhere; see bench/README.md):

    python3 bench/to_tflite.py MODEL.onnx [-o MODEL.tflite]

Needs numpy, onnx, flatbuffers and ai-edge-litert (for its TFLite schema,
ai_edge_litert/schema_py_generated.py): `pip install numpy onnx ai-edge-litert`.

Handles exactly what bench/make_models.py writes (what torch.onnx.export writes
for a MobileNet) and raises an error on anything else:

  ONNX (NCHW)                              TFLite (NHWC)
  input [1, C, H, W]                       input [1, H, W, C]
  Conv, group 1 (weights OIHW, bias)       CONV_2D, weights OHWI, bias
  Conv, group == in == out channels        DEPTHWISE_CONV_2D, weights [1, kh, kw, C], depth_multiplier 1
  Relu / Clip(0, 6) after a Conv or Add    fused_activation_function RELU / RELU6
  Add (same shapes)                        ADD
  GlobalAveragePool + Flatten              MEAN over axes [1, 2], keep_dims false
  Gemm (alpha 1, beta 1, transB 1)         FULLY_CONNECTED, weights [out, in], bias

as a real PyTorch -> TFLite conversion (ai-edge-torch, onnx2tf) does. Padding:
a conv whose ONNX pads are exactly what TF's SAME gives for its input size
(stride-1 3x3 convs with pads 1) gets SAME; no pads, VALID; other pads (the
stride-2 3x3 convs: PyTorch pads 1 on every side, TF's SAME would pad 0 before
and 1 after on an even size) get an explicit PAD op followed by a VALID conv.
A Relu or Clip that cannot be fused (its producer has other consumers) becomes
a RELU or RELU6 op.

The output is a function of the ONNX file only (no timestamps or paths): the
same model converts to the same bytes.
"""

import argparse
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import onnx
from onnx import numpy_helper

try:
    from ai_edge_litert import schema_py_generated as tfl
except ImportError as e:  # pragma: no cover
    raise ImportError(f"bench/to_tflite.py needs ai-edge-litert (its TFLite schema): pip install ai-edge-litert ({e})")

SCHEMA_VERSION = 3
BuiltinOp = tfl.BuiltinOperator
Act = tfl.ActivationFunctionType


class ConversionError(ValueError):
    pass


class AlignedBufferT(tfl.BufferT):
    """A buffer whose data starts on a 16-byte boundary of the file (what the TFLite converter
    does with FlatBufferBuilder::ForceVectorAlignment): kernels may read the weights in place."""

    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = bytes(self.data)
            builder.StartVector(1, len(raw), 16)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        tfl.BufferStart(builder)
        if data is not None:
            tfl.BufferAddData(builder, data)
        return tfl.BufferEnd(builder)


class Writer:
    """Collects tensors, buffers, operator codes and operators of one subgraph."""

    def __init__(self):
        self.tensors = []
        self.buffers = [tfl.BufferT()]  # buffer 0: the empty sentinel (tensors without data)
        self.opcodes = []  # builtin codes, in order of first use
        self.ops = []

    def tensor(self, name, shape, data=None, dtype=tfl.TensorType.FLOAT32):
        t = tfl.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = dtype
        t.buffer = 0
        if data is not None:
            want = np.float32 if dtype == tfl.TensorType.FLOAT32 else np.int32
            data = np.ascontiguousarray(data, dtype=want)
            if list(data.shape) != t.shape:
                raise AssertionError(f"{name}: data shape {list(data.shape)} != {t.shape}")
            b = AlignedBufferT()
            b.data = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, options_type=0, options=None):
        if code not in self.opcodes:
            self.opcodes.append(code)
        o = tfl.OperatorT()
        o.opcodeIndex = self.opcodes.index(code)
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.ops.append(o)
        return o

    def finish(self, inputs, outputs, description):
        sg = tfl.SubGraphT()
        sg.name = "main"
        sg.tensors = self.tensors
        sg.inputs = list(inputs)
        sg.outputs = list(outputs)
        sg.operators = self.ops
        codes = []
        for code in self.opcodes:
            oc = tfl.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)  # 127: PLACEHOLDER_FOR_GREATER_OP_CODES
            oc.version = 1  # every op here is float32 without the features of later versions
            codes.append(oc)
        m = tfl.ModelT()
        m.version = SCHEMA_VERSION
        m.description = description
        m.operatorCodes = codes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def attrs_of(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def same_pads(size, k, stride):
    """TF's SAME padding (before, after) and output size for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2, out


def convert(model, description=None):
    """ONNX ModelProto (as bench/make_models.py writes) -> TFLite flatbuffer bytes."""
    g = model.graph
    where = lambda n: f"node {n.name or '?'} ({n.op_type})"  # noqa: E731
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in inits]
    if len(graph_inputs) != 1 or len(g.output) != 1:
        raise ConversionError(f"expected one input and one output, got {len(graph_inputs)} and {len(g.output)}")
    gin = graph_inputs[0]
    if gin.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ConversionError(f"input {gin.name}: only float32 inputs are supported")
    dims = [d.dim_value for d in gin.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[0] != 1 or min(dims) <= 0:
        raise ConversionError(f"input {gin.name}: expected a static [1, C, H, W] shape, got {dims}")

    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_out = g.output[0].name

    w = Writer()
    # ONNX name -> (TFLite tensor index, kind, TFLite shape); kind "nhwc" (ONNX NCHW) or "flat"
    # ([1, C] in TFLite; [1, C] or [1, C, 1, 1] in ONNX).
    env = {}
    _, c, h, wd = dims
    env[gin.name] = (w.tensor(gin.name, [1, h, wd, c]), "nhwc", [1, h, wd, c])
    done = set()  # ids of Relu/Clip nodes fused into their producer

    def value(name, n):
        if name not in env:
            raise ConversionError(f"{where(n)}: input {name} is not a computed tensor (constant or unknown)")
        return env[name]

    def const(name, n):
        if name not in inits:
            raise ConversionError(f"{where(n)}: input {name} must be an initializer")
        return inits[name]

    def activation_of(n):
        """RELU / RELU6 for a Relu or Clip(0, 6) node (Clip(0, inf) is a Relu), else None."""
        if n.op_type == "Relu":
            return Act.RELU
        if n.op_type != "Clip":
            return None
        a = attrs_of(n)
        if opsets.get("ai.onnx", 13) < 11:
            lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            ins = list(n.input) + ["", ""]
            lo = float(inits[ins[1]]) if ins[1] in inits else (-np.inf if not ins[1] else None)
            hi = float(inits[ins[2]]) if ins[2] in inits else (np.inf if not ins[2] else None)
        if lo == 0.0 and hi == 6.0:
            return Act.RELU6
        if lo == 0.0 and hi == np.inf:
            return Act.RELU
        raise ConversionError(f"{where(n)}: only Clip(0, 6) and Clip(0, inf) are supported, got ({lo}, {hi})")

    def fusable(out_name):
        """The Relu/Clip that is the only consumer of out_name, with its activation, or (None, NONE)."""
        users = consumers.get(out_name, [])
        if out_name == graph_out or len(users) != 1:
            return None, Act.NONE
        act = activation_of(users[0])
        return (users[0], act) if act is not None else (None, Act.NONE)

    def result(n, shape, kind):
        """The output tensor of n, with the fused activation's node: (tensor index, activation)."""
        relu, act = fusable(n.output[0])
        name = relu.output[0] if relu is not None else n.output[0]
        if relu is not None:
            done.add(id(relu))
        idx = w.tensor(name, shape)
        env[name] = (idx, kind, shape)
        return idx, act

    for n in g.node:
        if id(n) in done:
            continue
        if n.domain not in ("", "ai.onnx"):
            raise ConversionError(f"{where(n)}: domain {n.domain} is not supported")
        a = attrs_of(n)
        op = n.op_type
        if op == "Conv":
            x, kind, shape = value(n.input[0], n)
            if kind != "nhwc":
                raise ConversionError(f"{where(n)}: input is not a 4-d activation")
            _, ih, iw, ic = shape
            wt = const(n.input[1], n).astype(np.float32)
            oc, icg, kh, kw = wt.shape
            has_bias = len(n.input) > 2 and n.input[2]
            bias = const(n.input[2], n).astype(np.float32) if has_bias else np.zeros(oc, np.float32)
            group = a.get("group", 1)
            strides = list(a.get("strides", [1, 1]))
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ConversionError(f"{where(n)}: auto_pad is not supported")
            if list(a.get("dilations", [1, 1])) != [1, 1]:
                raise ConversionError(f"{where(n)}: dilations {a['dilations']} are not supported")
            if list(a.get("kernel_shape", [kh, kw])) != [kh, kw] or len(strides) != 2 or len(pads) != 4:
                raise ConversionError(f"{where(n)}: only 2-d convolutions are supported")
            if bias.shape != (oc,):
                raise ConversionError(f"{where(n)}: bias shape {list(bias.shape)} != [{oc}]")
            depthwise = group != 1
            if depthwise and not (group == ic == oc and icg == 1):
                raise ConversionError(f"{where(n)}: group {group} with {ic} in, {oc} out channels: "
                                      "only group 1 and depthwise (group == in == out channels) are supported")
            if not depthwise and icg != ic:
                raise ConversionError(f"{where(n)}: weights have {icg} input channels, the input {ic}")
            sh, sw = strides
            pt, pl, pb, pr = pads
            oh = (ih + pt + pb - kh) // sh + 1
            ow = (iw + pl + pr - kw) // sw + 1
            st, sb, soh = same_pads(ih, kh, sh)
            sl, sr, sow = same_pads(iw, kw, sw)
            if pads == [0, 0, 0, 0]:
                padding = tfl.Padding.VALID
            elif (pt, pb, pl, pr) == (st, sb, sl, sr) and (oh, ow) == (soh, sow):
                padding = tfl.Padding.SAME
            else:
                # PyTorch's symmetric pads are not TF's SAME here: an explicit PAD, then VALID.
                if min(pads) < 0:
                    raise ConversionError(f"{where(n)}: negative pads {pads}")
                shape = [1, ih + pt + pb, iw + pl + pr, ic]
                pidx = w.tensor(f"{n.output[0]}/pad", shape)
                paddings = w.tensor(f"{n.output[0]}/paddings", [4, 2],
                                    np.array([[0, 0], [pt, pb], [pl, pr], [0, 0]]), tfl.TensorType.INT32)
                w.op(BuiltinOp.PAD, [x, paddings], [pidx], tfl.BuiltinOptions.PadOptions, tfl.PadOptionsT())
                x, padding = pidx, tfl.Padding.VALID
            if depthwise:
                wname, wdata = n.input[1], wt.transpose(1, 2, 3, 0)  # [C, 1, kh, kw] -> [1, kh, kw, C]
            else:
                wname, wdata = n.input[1], wt.transpose(0, 2, 3, 1)  # OIHW -> OHWI
            widx = w.tensor(wname, wdata.shape, wdata)
            bidx = w.tensor(n.input[2] if has_bias else f"{n.output[0]}/bias", [oc], bias)
            y, act = result(n, [1, oh, ow, oc], "nhwc")
            if depthwise:
                o = tfl.DepthwiseConv2DOptionsT()
                o.depthMultiplier = 1
                code, otype = BuiltinOp.DEPTHWISE_CONV_2D, tfl.BuiltinOptions.DepthwiseConv2DOptions
            else:
                o = tfl.Conv2DOptionsT()
                code, otype = BuiltinOp.CONV_2D, tfl.BuiltinOptions.Conv2DOptions
            o.padding, o.strideH, o.strideW = padding, sh, sw
            o.dilationHFactor = o.dilationWFactor = 1
            o.fusedActivationFunction = act
            w.op(code, [x, widx, bidx], [y], otype, o)
        elif op == "Add":
            if len(n.input) != 2:
                raise ConversionError(f"{where(n)}: expected two inputs")
            (xa, ka, sa), (xb, kb, sb) = value(n.input[0], n), value(n.input[1], n)
            if sa != sb or ka != kb:
                raise ConversionError(f"{where(n)}: only same-shape Adds are supported ({sa} + {sb})")
            y, act = result(n, sa, ka)
            o = tfl.AddOptionsT()
            o.fusedActivationFunction = act
            w.op(BuiltinOp.ADD, [xa, xb], [y], tfl.BuiltinOptions.AddOptions, o)
        elif op in ("Relu", "Clip"):
            act = activation_of(n)  # not fusable: its producer has other consumers
            x, kind, shape = value(n.input[0], n)
            idx = w.tensor(n.output[0], shape)
            env[n.output[0]] = (idx, kind, shape)
            w.op(BuiltinOp.RELU if act == Act.RELU else BuiltinOp.RELU6, [x], [idx])
        elif op == "GlobalAveragePool":
            x, kind, shape = value(n.input[0], n)
            if kind != "nhwc":
                raise ConversionError(f"{where(n)}: input is not a 4-d activation")
            _, ih, iw, ic = shape
            users = consumers.get(n.output[0], [])
            if n.output[0] == graph_out or any(u.op_type != "Flatten" for u in users):
                raise ConversionError(f"{where(n)}: only GlobalAveragePool followed by Flatten is supported")
            axes = w.tensor(f"{n.output[0]}/axes", [2], np.array([1, 2]), tfl.TensorType.INT32)
            y = w.tensor(n.output[0], [1, ic])
            env[n.output[0]] = (y, "flat", [1, ic])  # [1, C, 1, 1] in ONNX: the same values as [1, C]
            o = tfl.ReducerOptionsT()
            o.keepDims = False
            w.op(BuiltinOp.MEAN, [x, axes], [y], tfl.BuiltinOptions.ReducerOptions, o)
        elif op == "Flatten":
            x, kind, shape = value(n.input[0], n)
            if a.get("axis", 1) != 1 or kind != "flat":
                raise ConversionError(f"{where(n)}: only Flatten(axis=1) after GlobalAveragePool is supported")
            env[n.output[0]] = (x, kind, shape)  # nothing to do: MEAN gave [1, C]
        elif op == "Gemm":
            x, kind, shape = value(n.input[0], n)
            if kind != "flat":
                raise ConversionError(f"{where(n)}: input is not a [1, C] tensor")
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0) != 0:
                raise ConversionError(f"{where(n)}: only alpha 1, beta 1, transA 0 are supported")
            b = const(n.input[1], n).astype(np.float32)
            b = b if a.get("transB", 0) else b.T  # FULLY_CONNECTED wants [out, in]
            cout, cin = b.shape
            if cin != shape[1]:
                raise ConversionError(f"{where(n)}: weights take {cin} inputs, the input has {shape[1]}")
            bias = const(n.input[2], n).astype(np.float32).reshape(-1) if len(n.input) > 2 and n.input[2] \
                else np.zeros(cout, np.float32)
            if bias.shape != (cout,):
                raise ConversionError(f"{where(n)}: bias of {bias.size} values, expected {cout} (no broadcasting)")
            widx = w.tensor(n.input[1], [cout, cin], b)
            bidx = w.tensor(n.input[2] if len(n.input) > 2 and n.input[2] else f"{n.output[0]}/bias", [cout], bias)
            y, act = result(n, [1, cout], "flat")
            o = tfl.FullyConnectedOptionsT()
            o.fusedActivationFunction = act
            o.keepNumDims = False
            w.op(BuiltinOp.FULLY_CONNECTED, [x, widx, bidx], [y], tfl.BuiltinOptions.FullyConnectedOptions, o)
        else:
            raise ConversionError(f"{where(n)}: {op} is not supported (Conv, Relu, Clip, Add, "
                                  "GlobalAveragePool, Flatten, Gemm only)")
    if graph_out not in env:
        raise ConversionError(f"the graph output {graph_out} is not computed")
    out_idx, kind, shape = env[graph_out]
    if kind != "flat":
        raise ConversionError(f"the graph output {graph_out} must be a [1, N] tensor, got NHWC {shape}")
    if description is None:
        description = "bench/to_tflite.py (ONNX NCHW -> TFLite NHWC, float32)"
    return w.finish([env[gin.name][0]], [out_idx], description)


def convert_file(onnx_path):
    """Bytes of the TFLite model for an .onnx file."""
    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    return convert(model, f"{onnx_path.name} converted by mncc's bench/to_tflite.py "
                          "(ONNX NCHW -> TFLite NHWC, float32)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[6:]))
    ap.add_argument("onnx", type=Path, help="ONNX model in (as bench/make_models.py writes)")
    ap.add_argument("-o", "--output", type=Path, help="TFLite model out (default: the input with .tflite)")
    args = ap.parse_args()
    out = args.output or args.onnx.with_suffix(".tflite")
    try:
        data = convert_file(args.onnx)
    except ConversionError as e:
        print(f"error: {args.onnx}: {e}", file=sys.stderr)
        return 1
    out.write_bytes(data)
    print(f"{out}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
