//! ONNX models built structurally: an arbitrary sequence of MobileNet
//! operators with random attributes and shapes, mostly well-formed (channel
//! counts follow the graph) so that inputs reach the passes, lowering,
//! planning and codegen, not only the parser.
#![no_main]
use arbitrary::Arbitrary;
use mncc_cli::onnx_build::{float, int, ints, string, Model};

#[derive(Arbitrary, Debug)]
struct Spec {
    opset: u8,
    channels: u8,
    height: u8,
    width: u8,
    layers: Vec<Layer>,
    head: Head,
    /// A value planted in one weight (NaN, infinities, huge numbers).
    poison: Option<(u16, f32)>,
}

#[derive(Arbitrary, Debug)]
enum Layer {
    Conv {
        out_c: u8,
        kernel: u8,
        stride: (u8, u8),
        pads: [u8; 4],
        auto_pad: u8,
        depthwise: bool,
        bias: bool,
        group: u8,
        dilation: u8,
    },
    BatchNorm {
        eps: f32,
        gamma: f32,
    },
    Relu,
    Clip {
        lo: f32,
        hi: f32,
        as_attributes: bool,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    HardSwishByMul,
    Residual {
        back: u8,
    },
    SqueezeExcite {
        squeeze: u8,
        keepdims: bool,
    },
    Pad {
        pads: [u8; 4],
    },
    GlobalAveragePool,
    AveragePool {
        kernel: u8,
    },
    ReduceMean {
        keepdims: bool,
        axes: (i8, i8),
    },
    Dropout,
    Identity,
    Transpose {
        perm: [u8; 4],
    },
}

#[derive(Arbitrary, Debug)]
enum Head {
    Gemm { classes: u8, trans_b: bool, alpha: f32, flatten_axis: i8 },
    MatMulAdd { classes: u8 },
    ConvHead { classes: u8 },
    None,
}

struct Builder {
    m: Model,
    /// The current tensor, its channels and whether it is still 4-D.
    x: String,
    c: usize,
    rank4: bool,
    /// Earlier 4-D tensors and their channels (for residuals).
    earlier: Vec<(String, usize)>,
    k: usize,
    poison: Option<(u16, f32)>,
}

impl Builder {
    fn name(&mut self, op: &str) -> String {
        self.k += 1;
        format!("{op}_{}", self.k)
    }

    fn weight(&mut self, dims: &[i64]) -> String {
        let n: i64 = dims.iter().product::<i64>().clamp(0, 1 << 16);
        let mut data: Vec<f32> = (0..n).map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.4).collect();
        if let Some((at, v)) = self.poison.take() {
            if !data.is_empty() {
                let i = at as usize % data.len();
                data[i] = v;
            }
        }
        let name = self.name("w");
        self.m.init(&name, dims, data)
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<onnx_protobuf::AttributeProto>) -> String {
        let name = self.name(op);
        self.m.node(op, &name, inputs, attrs)
    }

    fn layer(&mut self, l: &Layer, opset: i64) {
        let x = self.x.clone();
        match *l {
            Layer::Conv { out_c, kernel, stride, pads, auto_pad, depthwise, bias, group, dilation } => {
                let k = 1 + (kernel % 5) as i64;
                let (oc, g) = if depthwise { (self.c as i64, self.c as i64) } else { (1 + (out_c % 24) as i64, 1 + (group % 3) as i64 / 2) };
                let w = self.weight(&[oc, (self.c as i64 / g.max(1)).max(1), k, k]);
                let mut ins = vec![x.clone(), w];
                if bias {
                    ins.push(self.weight(&[oc]));
                }
                let mut attrs = vec![
                    ints("strides", &[(stride.0 % 3) as i64, (stride.1 % 3) as i64]),
                    int("group", g),
                    ints("kernel_shape", &[k, k]),
                ];
                match auto_pad % 5 {
                    0 => attrs.push(ints("pads", &pads.map(|p| (p % 3) as i64))),
                    1 => attrs.push(string("auto_pad", "SAME_UPPER")),
                    2 => attrs.push(string("auto_pad", "SAME_LOWER")),
                    3 => attrs.push(string("auto_pad", "VALID")),
                    _ => {}
                }
                if dilation % 7 == 0 {
                    attrs.push(ints("dilations", &[1 + (dilation % 2) as i64, 1]));
                }
                let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                self.x = self.op("Conv", &refs, attrs);
                self.c = oc as usize;
                self.earlier.push((self.x.clone(), self.c));
            }
            Layer::BatchNorm { eps, gamma } => {
                let c = self.c as i64;
                let g = self.weight(&[c]);
                if let Some(t) = self.m.inits.last_mut() {
                    t.float_data.iter_mut().for_each(|v| *v = 1.0 + *v * gamma.clamp(-1e6, 1e6));
                }
                let b = self.weight(&[c]);
                let mu = self.weight(&[c]);
                let var = self.weight(&[c]);
                if let Some(t) = self.m.inits.last_mut() {
                    t.float_data.iter_mut().for_each(|v| *v = v.abs() + 0.5);
                }
                self.x = self.op("BatchNormalization", &[&x, &g, &b, &mu, &var], vec![float("epsilon", eps)]);
            }
            Layer::Relu => self.x = self.op("Relu", &[&x], vec![]),
            Layer::Clip { lo, hi, as_attributes } => {
                self.x = if as_attributes || opset < 11 {
                    self.op("Clip", &[&x], vec![float("min", lo), float("max", hi)])
                } else {
                    let a = self.name("lo");
                    let a = self.m.init(&a, &[], vec![lo]);
                    let b = self.name("hi");
                    let b = self.m.init(&b, &[], vec![hi]);
                    self.op("Clip", &[&x, &a, &b], vec![])
                }
            }
            Layer::HardSigmoid { alpha, beta } => {
                self.x = self.op("HardSigmoid", &[&x], vec![float("alpha", alpha), float("beta", beta)])
            }
            Layer::HardSwish => self.x = self.op("HardSwish", &[&x], vec![]),
            Layer::HardSwishByMul => {
                let h = self.op("HardSigmoid", &[&x], vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)]);
                self.x = self.op("Mul", &[&x, &h], vec![]);
            }
            Layer::Residual { back } => {
                if let Some((r, _)) = self.earlier.iter().rev().filter(|(_, c)| *c == self.c).nth(back as usize % 3).cloned() {
                    self.x = self.op("Add", &[&x, &r], vec![]);
                }
            }
            Layer::SqueezeExcite { squeeze, keepdims } => {
                let s = if keepdims {
                    self.op("GlobalAveragePool", &[&x], vec![])
                } else {
                    self.op("ReduceMean", &[&x], vec![ints("axes", &[2, 3]), int("keepdims", 0)])
                };
                let mid = 1 + (squeeze % 8) as i64;
                let c = self.c as i64;
                let w1 = self.weight(&[mid, c, 1, 1]);
                let y = self.op("Conv", &[&s, &w1], vec![]);
                let y = self.op("Relu", &[&y], vec![]);
                let w2 = self.weight(&[c, mid, 1, 1]);
                let y = self.op("Conv", &[&y, &w2], vec![]);
                let y = self.op("HardSigmoid", &[&y], vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)]);
                self.x = self.op("Mul", &[&x, &y], vec![]);
            }
            Layer::Pad { pads } => {
                let p: Vec<i64> = [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]].iter().map(|&v| (v % 3) as i64).collect();
                self.x = if opset < 11 {
                    self.op("Pad", &[&x], vec![ints("pads", &p)])
                } else {
                    let n = self.name("pads");
                    let t = self.m.init_i64(&n, &[8], p);
                    self.op("Pad", &[&x, &t], vec![])
                };
            }
            Layer::GlobalAveragePool => self.x = self.op("GlobalAveragePool", &[&x], vec![]),
            Layer::AveragePool { kernel } => {
                let k = 1 + (kernel % 8) as i64;
                self.x = self.op("AveragePool", &[&x], vec![ints("kernel_shape", &[k, k])]);
            }
            Layer::ReduceMean { keepdims, axes } => {
                self.x = self.op(
                    "ReduceMean",
                    &[&x],
                    vec![ints("axes", &[(axes.0 % 5) as i64, (axes.1 % 5) as i64]), int("keepdims", keepdims as i64)],
                );
                self.rank4 = keepdims;
            }
            Layer::Dropout => self.x = self.op("Dropout", &[&x], vec![]),
            Layer::Identity => self.x = self.op("Identity", &[&x], vec![]),
            Layer::Transpose { perm } => {
                self.x = self.op("Transpose", &[&x], vec![ints("perm", &perm.map(|p| (p % 4) as i64))]);
            }
        }
    }
}

libfuzzer_sys::fuzz_target!(|spec: Spec| {
    if spec.layers.len() > 64 {
        return;
    }
    let opset = 7 + (spec.opset % 20) as i64;
    let c = 1 + (spec.channels % 8) as i64;
    let (h, w) = (1 + (spec.height % 40) as i64, 1 + (spec.width % 40) as i64);
    let mut b = Builder {
        m: Model::new(opset, &[1, c, h, w]),
        x: "input".into(),
        c: c as usize,
        rank4: true,
        earlier: Vec::new(),
        k: 0,
        poison: spec.poison,
    };
    for l in &spec.layers {
        b.layer(l, opset);
    }
    let x = b.x.clone();
    let out = match spec.head {
        Head::Gemm { classes, trans_b, alpha, flatten_axis } => {
            let flat = if b.rank4 {
                b.op("Flatten", &[&x], vec![int("axis", (flatten_axis % 3) as i64)])
            } else {
                x
            };
            let k = (1 + classes % 16) as i64;
            let wt = if trans_b { b.weight(&[k, b.c as i64]) } else { b.weight(&[b.c as i64, k]) };
            let bias = b.weight(&[k]);
            b.op("Gemm", &[&flat, &wt, &bias], vec![int("transB", trans_b as i64), float("alpha", alpha)])
        }
        Head::MatMulAdd { classes } => {
            let flat = b.op("Flatten", &[&x], vec![]);
            let k = (1 + classes % 16) as i64;
            let wt = b.weight(&[b.c as i64, k]);
            let y = b.op("MatMul", &[&flat, &wt], vec![]);
            let bias = b.weight(&[k]);
            let y = b.op("Add", &[&y, &bias], vec![]);
            b.op("Softmax", &[&y], vec![])
        }
        Head::ConvHead { classes } => {
            let k = (1 + classes % 16) as i64;
            let wt = b.weight(&[k, b.c as i64, 1, 1]);
            let y = b.op("Conv", &[&x, &wt], vec![]);
            b.op("Flatten", &[&y], vec![])
        }
        Head::None => x,
    };
    let _ = mncc_cli::fuzzing::onnx(&b.m.bytes(&out));
});
