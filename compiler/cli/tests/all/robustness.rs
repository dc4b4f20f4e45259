//! Hostile input: each case a finding of the fuzzing campaign (issue 24) or
//! a limit, run through the whole compile path up to the generated source.
//! Every case must end in an error that names what is wrong (never a panic,
//! an abort or a hang, and never a compiled model).

use mncc_cli::fuzzing;
use mncc_cli::onnx_build::{float, int, ints, small, string, Model};
use onnx_protobuf::AttributeProto;

/// `f` applied to the small valid model; its bytes.
fn mutated(f: impl FnOnce(&mut Model, &mut String)) -> Vec<u8> {
    let (mut m, mut out) = small();
    f(&mut m, &mut out);
    m.bytes(&out)
}

fn node<'a>(m: &'a mut Model, name: &str) -> &'a mut onnx_protobuf::NodeProto {
    m.nodes.iter_mut().find(|n| n.name == name).expect("node")
}

fn set(m: &mut Model, name: &str, a: AttributeProto) {
    let n = node(m, name);
    n.attribute.retain(|x| x.name != a.name);
    n.attribute.push(a);
}

/// A node appended after the output (it becomes the output).
fn append(m: &mut Model, out: &mut String, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) {
    let prev = out.clone();
    let ins: Vec<&str> = std::iter::once(prev.as_str()).chain(inputs.iter().copied()).collect();
    *out = m.node(op, "tail", &ins, attrs);
}

fn expect_error(what: &str, r: Result<String, mncc::Error>, needles: &[&str]) {
    let e = match r {
        Ok(_) => panic!("{what}: compiled, but the input is broken"),
        Err(e) => e.to_string(),
    };
    println!("{what}:\n  {}", e.replace('\n', "\n  "));
    for n in needles {
        assert!(e.contains(n), "{what}: {n:?} missing from:\n{e}");
    }
    assert!(e.len() < 2000, "{what}: the message is {} characters long", e.len());
}

#[test]
fn the_small_model_compiles() {
    let (m, out) = small();
    fuzzing::onnx(&m.bytes(&out)).expect("the base of every mutation is valid");
}

#[test]
fn attribute_values_are_checked_before_import() {
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "softmax axis 5 on rank-2 logits",
            mutated(|m, o| append(m, o, "Softmax", &[], vec![int("axis", 5)])),
            &["`tail` (Softmax)", "`axis`", "axis 5 is out of range", "-2 to 1"],
        ),
        (
            "softmax axis -5",
            mutated(|m, o| append(m, o, "Softmax", &[], vec![int("axis", -5)])),
            &["axis -5 is out of range"],
        ),
        (
            "softmax axis 0 over the batch",
            mutated(|m, o| append(m, o, "Softmax", &[], vec![int("axis", 0)])),
            &["axis 0"],
        ),
        (
            "a zero stride with auto_pad SAME_UPPER",
            mutated(|m, _| {
                node(m, "stem").attribute.retain(|a| a.name != "pads");
                set(m, "stem", string("auto_pad", "SAME_UPPER"));
                set(m, "stem", ints("strides", &[0, 0]));
            }),
            &["`stem` (Conv)", "`strides`", "out of range"],
        ),
        (
            "a zero stride with auto_pad SAME_LOWER",
            mutated(|m, _| {
                node(m, "stem").attribute.retain(|a| a.name != "pads");
                set(m, "stem", string("auto_pad", "SAME_LOWER"));
                set(m, "stem", ints("strides", &[0, 1]));
            }),
            &["`strides`"],
        ),
        (
            "dilations of the wrong length with auto_pad SAME",
            mutated(|m, _| {
                node(m, "stem").attribute.retain(|a| a.name != "pads");
                set(m, "stem", string("auto_pad", "SAME_UPPER"));
                set(m, "stem", ints("dilations", &[1, 1, 1]));
            }),
            &["`dilations`", "3 value(s); 2 are expected"],
        ),
        (
            "pads of the wrong length with auto_pad SAME",
            mutated(|m, _| {
                set(m, "stem", string("auto_pad", "SAME_UPPER"));
                set(m, "stem", ints("pads", &[1, 1, 1]));
            }),
            &["`pads`", "3 value(s); 4 are expected"],
        ),
        (
            "Gemm alpha NaN",
            mutated(|m, _| set(m, "fc", float("alpha", f32::NAN))),
            &["`fc` (Gemm)", "`alpha`", "not a finite number"],
        ),
        (
            "BatchNormalization epsilon inf",
            mutated(|m, _| set(m, "bn", float("epsilon", f32::INFINITY))),
            &["`bn` (BatchNormalization)", "`epsilon`", "not a finite number"],
        ),
        (
            "HardSigmoid alpha NaN",
            mutated(|m, o| append(m, o, "HardSigmoid", &[], vec![float("alpha", f32::NAN)])),
            &["`tail` (HardSigmoid)", "`alpha`"],
        ),
        (
            "ReduceMean keepdims of the wrong type",
            mutated(|m, _| {
                let gap = m.nodes.iter().position(|n| n.name == "gap").unwrap();
                m.nodes[gap].op_type = "ReduceMean".into();
                m.nodes[gap].attribute = vec![ints("axes", &[2, 3]), float("keepdims", 0.0)];
            }),
            &["`gap` (ReduceMean)", "`keepdims`"],
        ),
        (
            "ReduceMean keepdims out of range",
            mutated(|m, _| {
                let gap = m.nodes.iter().position(|n| n.name == "gap").unwrap();
                m.nodes[gap].op_type = "ReduceMean".into();
                m.nodes[gap].attribute = vec![ints("axes", &[2, 3]), int("keepdims", 7)];
            }),
            &["`keepdims`", "0 to 1"],
        ),
        (
            "Clip's opset-10 attributes at opset 13",
            mutated(|m, _| {
                let n = node(m, "clip");
                n.input.truncate(1);
                n.attribute = vec![float("min", 0.0), float("max", 6.0)];
            }),
            &["`clip` (Clip)", "min, max at opset 13", "opsets 1 to 10 only"],
        ),
    ];
    for (what, bytes, needles) in cases {
        expect_error(what, fuzzing::onnx(&bytes), needles);
    }
}

/// The long tail of exporters' operators (MaxPool, Transpose, Sub, Div,
/// Slice): what mncc cannot compute is an error naming node and reason.
#[test]
fn exporter_operators_outside_what_mncc_computes() {
    type Case<'a> = (&'a str, Box<dyn Fn(&mut Model, &mut String)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "MaxPool with pads as large as its window",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let pool = m.node(
                    "MaxPool",
                    "pool",
                    &[&pw],
                    vec![ints("kernel_shape", &[2, 2]), ints("pads", &[2, 2, 2, 2])],
                );
                node(m, "gap").input[0] = pool;
            }),
            vec!["node `pool` (MaxPool)", "smaller than the window"],
        ),
        (
            "a Transpose that reorders a feature map",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let t = m.node("Transpose", "t", &[&pw], vec![ints("perm", &[0, 2, 3, 1])]);
                node(m, "gap").input[0] = t;
            }),
            vec![
                "node `gap` (GlobalAveragePool)",
                "last by node `t`",
                "reorders elements",
            ],
        ),
        (
            "Div of a constant by a tensor",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let one = m.init("one", &[], vec![1.0]);
                let d = m.node("Div", "div", &[&one, &pw], vec![]);
                node(m, "gap").input[0] = d;
            }),
            vec!["node `div` (Div)", "division of a tensor by a constant"],
        ),
        (
            "Div by zero",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let zero = m.init("zero", &[], vec![0.0]);
                let d = m.node("Div", "div", &[&pw, &zero], vec![]);
                node(m, "gap").input[0] = d;
            }),
            vec!["node `div`", "infinite"],
        ),
        (
            "Sub of two feature maps",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let d = m.node("Sub", "sub", &[&pw, &pw], vec![]);
                node(m, "gap").input[0] = d;
            }),
            vec!["node `sub` (Sub)", "two computed tensors"],
        ),
        (
            "Slice of a feature map",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let st = m.init_i64("st", &[1], vec![0]);
                let en = m.init_i64("en", &[1], vec![1]);
                let d = m.node("Slice", "slice", &[&pw, &st, &en], vec![]);
                node(m, "gap").input[0] = d;
            }),
            vec!["node `slice` (Slice)", "must be a constant"],
        ),
        (
            "a Cast of a feature map to an integer type",
            Box::new(|m: &mut Model, _: &mut String| {
                let pw = node(m, "pw").output[0].clone();
                let d = m.node("Cast", "cast", &[&pw], vec![int("to", 7)]);
                node(m, "gap").input[0] = d;
            }),
            vec!["node `cast` (Cast)", "int64", "float32 or float16"],
        ),
    ];
    for (what, f, needles) in cases {
        expect_error(what, fuzzing::onnx(&mutated(|m, o| f(m, o))), &needles);
    }
}

#[test]
fn a_softmax_across_a_batch_is_refused() {
    // A classifier head on a [4, 8] feature input, opset 11: Softmax with
    // axis 0 coerces the four rows into one; mncc computes one row.
    let mut m = Model::new(11, &[4, 8]);
    let w = m.init("w", &[3, 8], vec![0.1; 24]);
    let fc = m.node("Gemm", "fc", &["input", &w], vec![int("transB", 1)]);
    let sm = m.node("Softmax", "sm", &[&fc], vec![int("axis", 0)]);
    expect_error(
        "Softmax over the batch",
        fuzzing::onnx(&m.bytes(&sm)),
        &["node `sm` (Softmax)", "axis 0 of a batch of 4", "mixes the images"],
    );
}

#[test]
fn a_squeezed_mean_cannot_feed_a_convolution() {
    // Squeeze-and-excitation with ReduceMean keepdims = 0: the conv after
    // it reads a [1, c] tensor (an index out of bounds before).
    let bytes = mutated(|m, _| {
        let gap = m.nodes.iter().position(|n| n.name == "gap").unwrap();
        m.nodes[gap].op_type = "ReduceMean".into();
        m.nodes[gap].attribute = vec![ints("axes", &[2, 3]), int("keepdims", 0)];
        let w = m.init("se.w", &[16, 16, 1, 1], vec![0.1; 256]);
        let se = m.node("Conv", "se", &["gap_out", &w], vec![]);
        node(m, "flatten").input[0] = se;
    });
    expect_error(
        "ReduceMean keepdims 0 into a Conv",
        fuzzing::onnx(&bytes),
        &["`se` (Conv)", "[1, 16]"],
    );
}

#[test]
fn non_finite_constants_never_reach_codegen() {
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "a NaN weight",
            mutated(|m, _| m.inits.iter_mut().find(|t| t.name == "pw.w").unwrap().float_data[3] = f32::NAN),
            &["`pw` (Conv)", "1 NaN", "index 3"],
        ),
        (
            "an infinite weight",
            mutated(|m, _| m.inits.iter_mut().find(|t| t.name == "dw.w").unwrap().float_data[0] = f32::INFINITY),
            &["`dw` (Conv)", "infinite"],
        ),
        (
            "an Add of a NaN constant (folded into the Gemm's bias)",
            mutated(|m, o| {
                let c = m.init("nan", &[1, 10], vec![f32::NAN; 10]);
                append(m, o, "Add", &[&c], vec![]);
            }),
            &["`fc` (Gemm)", "bias", "NaN", "`tail`"],
        ),
        (
            "a BatchNorm scale that folds to infinity",
            mutated(|m, _| {
                m.inits.iter_mut().find(|t| t.name == "bn.g").unwrap().float_data = vec![3e38; 8];
                m.inits.iter_mut().find(|t| t.name == "bn.v").unwrap().float_data = vec![1e-6; 8];
            }),
            &["`stem` (Conv)", "infinite", "`bn`"],
        ),
    ];
    for (what, bytes, needles) in cases {
        expect_error(what, fuzzing::onnx(&bytes), needles);
    }
}

#[test]
fn graph_structure_problems() {
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "two nodes writing one value",
            mutated(|m, _| {
                let stem_out = node(m, "stem").output[0].clone();
                node(m, "bn").output[0] = stem_out;
            }),
            &[
                "`bn` (BatchNormalization)",
                "writes `stem_out`",
                "node `stem` already defines",
            ],
        ),
        (
            "an input of 2^31 x 2^31",
            mutated(|m, _| m.input = vec![1, 3, 1 << 31, 1 << 31]),
            &["input `input`", "dimension 2 is 2147483648"],
        ),
        (
            "a negative batch",
            mutated(|m, _| m.input[0] = -3),
            &["dimension 0 is -3"],
        ),
        (
            "an input just within the dimension limit, too large as a whole",
            mutated(|m, _| m.input = vec![1, 3, 1 << 20, 1 << 20]),
            &["input `input`", "too large", "limit"],
        ),
        (
            "a weight whose dims overflow",
            mutated(|m, _| {
                let t = m.inits.iter_mut().find(|t| t.name == "fc.w").unwrap();
                t.dims = vec![1 << 40, 1 << 40];
            }),
            &["initializer `fc.w`", "limit"],
        ),
    ];
    for (what, bytes, needles) in cases {
        expect_error(what, fuzzing::onnx(&bytes), needles);
    }
}

/// A chain of `n` depthwise convs and ReLUs: the passes and the planner are
/// linear, so 5,000 layers compile in about a second (cubic before: 6
/// minutes); the bound only catches a return to that.
#[test]
fn long_chains_compile_in_linear_time() {
    let layers = 5000;
    let mut m = Model::new(13, &[1, 3, 4, 4]);
    let w0 = m.init("w0", &[2, 3, 1, 1], vec![0.1; 6]);
    let mut x = m.node("Conv", "c0", &["input", &w0], vec![]);
    let wd = m.init("wd", &[2, 1, 3, 3], vec![0.1; 18]);
    for i in 0..layers {
        x = m.node(
            "Conv",
            &format!("d{i}"),
            &[&x, &wd],
            vec![int("group", 2), ints("pads", &[1, 1, 1, 1])],
        );
        x = m.node("Relu", &format!("r{i}"), &[&x], vec![]);
    }
    let start = std::time::Instant::now();
    let src = fuzzing::onnx(&m.bytes(&x)).expect("compiles");
    let took = start.elapsed();
    println!("{layers} layers: {took:?}, {} MB of source", src.len() >> 20);
    assert!(took.as_secs() < 60, "{layers} layers took {took:?}");
    // Past the node limit: refused before any work.
    let mut big = Model::new(13, &[1, 3, 4, 4]);
    let mut y = "input".to_string();
    for i in 0..=mncc::limits::MAX_NODES {
        y = big.node("Relu", &format!("r{i}"), &[&y], vec![]);
    }
    expect_error(
        "too many nodes",
        fuzzing::onnx(&big.bytes(&y)),
        &["20001 nodes", "limit is 20000"],
    );
}

#[test]
fn toml_problems_name_the_field_and_what_it_takes() {
    let base = "arch = \"v1\"\nalpha = 0.25\nresolution = 96\nclasses = 10\n[weights]\nseed = 1\n";
    let dir = std::path::Path::new(".");
    let long = "a".repeat(100_000);
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "a string for an integer",
            base.replace("resolution = 96", "resolution = \"\""),
            &["fuzz.toml:3:14", "`resolution`", "multiple of 32", "found string"],
        ),
        (
            "an array for the seed",
            base.replace("seed = 1", "seed = [1]"),
            &["`weights.seed`", "non-negative integer"],
        ),
        (
            "a 100,000-character value",
            base.replace("arch = \"v1\"", &format!("arch = \"{long}\"")),
            &["`arch", "(100000 characters)", "mobilenet_v1"],
        ),
        (
            "input.mean = nan",
            format!("{base}[input]\nmean = nan\n"),
            &["`input.mean`", "finite"],
        ),
        (
            "input.std = 1e-45",
            format!("{base}[input]\nstd = 1e-45\n"),
            &["`input.std`", "overflows f32"],
        ),
        (
            "classes = 1000000 at alpha 1.0",
            base.replace("classes = 10", "classes = 1000000")
                .replace("alpha = 0.25", "alpha = 1.0"),
            &["`classifier`", "limit", "lower `classes`"],
        ),
    ];
    for (what, text, needles) in cases {
        let r = match fuzzing::toml(&text, dir) {
            Ok(None) => {
                // Too large for the fuzzing path: the full load must refuse it.
                let spec = mncc::spec::parse(&text, "fuzz.toml", "m", dir).map_err(mncc::Error);
                spec.and_then(mncc::from_spec).and_then(|m| fuzzing::source(&m))
            }
            Ok(Some(s)) => Ok(s),
            Err(e) => Err(e),
        };
        expect_error(what, r, needles);
    }
}

#[test]
fn the_largest_documented_resolution_compiles_in_bounded_memory() {
    // resolution = 2048 (the documented maximum) ran the reference
    // interpreter out of memory calibrating BatchNorm; now it calibrates at
    // up to 512 and frees each activation after its last reader.
    let text = "arch = \"v1\"\nalpha = 0.25\nresolution = 2048\nclasses = 10\n[weights]\nseed = 1\n";
    let spec = mncc::spec::parse(text, "big.toml", "big", std::path::Path::new(".")).unwrap();
    let model = mncc::from_spec(spec).expect("compiles");
    let program = mncc::compile(&model).expect("lowers");
    assert!(program.arena_len <= mncc::limits::MAX_ARENA_BYTES);
}

#[test]
fn safetensors_problems_are_explained() {
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty", vec![], &["too short for a header"]),
        (
            "random bytes",
            vec![0xff; 64],
            &["over 100 MB", "is this a safetensors file"],
        ),
        (
            "a header longer than the file",
            [&8u64.to_le_bytes()[..], b"{\"a\":1}"].concat(),
            &["larger than the 15-byte file"],
        ),
        (
            "not JSON",
            [&4u64.to_le_bytes()[..], b"{abc"].concat(),
            &["not the JSON object"],
        ),
        (
            "offsets that leave a gap",
            {
                let h = br#"{"conv_pw_6.weight":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
                [&(h.len() as u64).to_le_bytes()[..], h, &[0u8; 12]].concat()
            },
            &["`conv_pw_6.weight`", "offsets"],
        ),
        (
            "data shorter than the offsets say",
            {
                let h = br#"{"conv_pw_6.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
                [&(h.len() as u64).to_le_bytes()[..], h, &[0u8; 4]].concat()
            },
            &["truncated"],
        ),
    ];
    for (what, bytes, needles) in cases {
        let r = fuzzing::safetensors(&bytes);
        expect_error(what, r, needles);
        let e = fuzzing::safetensors(&bytes).unwrap_err().to_string();
        for internal in [
            "MetadataIncompleteBuffer",
            "HeaderTooLarge",
            "InvalidOffset",
            "HeaderTooSmall",
        ] {
            assert!(!e.contains(internal), "{what}: the library's variant name in {e}");
        }
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("w.safetensors");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("mkfifo unavailable: skipped");
        return;
    }
    let toml = dir.path().join("m.toml");
    std::fs::write(
        &toml,
        "arch = \"v1\"\nalpha = 0.25\nresolution = 96\n[weights]\nfile = \"w.safetensors\"\n",
    )
    .unwrap();
    let e = mncc::load(&toml).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn compile_never_overwrites_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let (m, out) = small();
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, m.bytes(&out)).unwrap();
    let before = std::fs::read(&model).unwrap();
    for target in ["m.onnx", "m.rs.onnx"] {
        let o = crate::common::mncc(&[
            "compile",
            model.to_str().unwrap(),
            "-o",
            dir.path().join(target).to_str().unwrap(),
        ]);
        let (_, err) = crate::common::text(&o);
        assert!(!o.status.success(), "-o {target}: {err}");
        assert!(err.contains("overwrite") || err.contains(".rs"), "{err}");
    }
    assert_eq!(std::fs::read(&model).unwrap(), before, "the model file changed");
}

#[test]
fn an_affine_that_cannot_fold_names_the_onnx_operator() {
    // A per-channel Mul after a ReLU, read by the pool: neither the conv
    // before it (it has an activation) nor a conv after it can absorb it.
    let bytes = mutated(|m, _| {
        let relu = m.node("Relu", "pw_relu", &["pw_out"], vec![]);
        let s = m.init("scale", &[1, 16, 1, 1], vec![0.5; 16]);
        let y = m.node("Mul", "affine", &[&relu, &s], vec![]);
        node(m, "gap").input[0] = y;
    });
    expect_error(
        "an unfoldable per-channel Mul",
        fuzzing::onnx(&bytes),
        &["`affine` (Mul)", "cannot fold", "directly follow a convolution"],
    );
}

#[test]
fn a_huge_weights_file_is_refused_before_reading() {
    // A sparse 5 GiB file: reported with its size and the limit, not read
    // (it was an out-of-memory abort).
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.safetensors");
    std::fs::File::create(&w).unwrap().set_len(5 << 30).unwrap();
    let toml = dir.path().join("m.toml");
    std::fs::write(
        &toml,
        "arch = \"v1\"\nalpha = 0.25\nresolution = 96\n[weights]\nfile = \"w.safetensors\"\n",
    )
    .unwrap();
    let e = mncc::load(&toml).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains("5.00 GiB is 20.0x the limit of 256.00 MiB"), "{e}");
}

#[test]
fn names_from_the_file_are_cut() {
    let long = "n".repeat(100_000);
    let bytes = mutated(|m, _| {
        node(m, "fc").name = long.clone();
        set(m, &long, float("alpha", f32::NAN));
    });
    expect_error(
        "a 100,000-character node name",
        fuzzing::onnx(&bytes),
        &["(100000 characters)"],
    );
}

/// Malformed quantized models (issue 25): a zero or infinite scale, a zero
/// point of another type, scales per channel of the wrong count, an axis out
/// of range, an int4 or float8 weight, a tensor read with other parameters
/// than it was written with. Each an error naming the node and the input.
#[test]
fn malformed_quantized_models() {
    // input -> QuantizeLinear -> QLinearConv (1x1, 3 -> 4) -> DequantizeLinear
    let build = |f: &dyn Fn(&mut Model)| -> Vec<u8> {
        let mut m = Model::new(13, &[1, 3, 4, 4]);
        m.init("xs", &[], vec![0.02]);
        m.init_raw("xz", &[], 2, vec![128]);
        m.init_raw("w", &[4, 3, 1, 1], 3, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        m.init("ws", &[4], vec![0.01, 0.02, 0.03, 0.04]);
        m.init_raw("wz", &[4], 3, vec![0; 4]);
        m.init("ys", &[], vec![0.05]);
        m.init_raw("yz", &[], 2, vec![100]);
        m.node("QuantizeLinear", "q", &["input", "xs", "xz"], vec![]);
        m.node(
            "QLinearConv",
            "conv",
            &["q_out", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
            vec![],
        );
        m.node("DequantizeLinear", "dq", &["conv_out", "ys", "yz"], vec![]);
        f(&mut m);
        m.bytes("dq_out")
    };
    fuzzing::onnx(&build(&|_| {})).expect("the quantized base model compiles");
    let init = |m: &mut Model, name: &str| -> usize { m.inits.iter().position(|t| t.name == name).unwrap() };
    type Case<'a> = (&'a str, Box<dyn Fn(&mut Model)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "zero scale",
            Box::new(move |m: &mut Model| {
                let i = init(m, "ys");
                m.inits[i].float_data = vec![0.0];
            }),
            vec!["node `conv` (QLinearConv)", "scale 0 is not a positive finite number"],
        ),
        (
            "infinite weight scale",
            Box::new(move |m: &mut Model| {
                let i = init(m, "ws");
                m.inits[i].float_data[2] = f32::INFINITY;
            }),
            vec!["node `conv` (QLinearConv)", "the weight's scale inf"],
        ),
        (
            "an int64 zero point",
            Box::new(move |m: &mut Model| {
                let i = init(m, "yz");
                m.inits.remove(i);
                m.init_i64("yz", &[], vec![300]);
            }),
            vec![
                "node `conv` (QLinearConv)",
                "the output's zero point (input 7) is a wider integer",
            ],
        ),
        (
            "three scales for four channels",
            Box::new(move |m: &mut Model| {
                let i = init(m, "ws");
                m.inits[i].dims = vec![3];
                m.inits[i].float_data.truncate(3);
            }),
            vec!["node `conv` (QLinearConv)", "3 scale(s) and 4 zero point(s)"],
        ),
        (
            "an int4 weight",
            Box::new(move |m: &mut Model| {
                let i = init(m, "w");
                m.inits[i].data_type = 22;
                m.inits[i].raw_data.truncate(6);
            }),
            vec!["initializer `w`", "int4"],
        ),
        (
            "a float8 weight",
            Box::new(move |m: &mut Model| {
                let i = init(m, "w");
                m.inits[i].data_type = 17;
            }),
            vec!["initializer `w`", "float8"],
        ),
        (
            "read with another scale than written",
            Box::new(move |m: &mut Model| {
                m.init("other", &[], vec![0.5]);
                m.nodes[2].input[1] = "other".into();
            }),
            vec!["node `dq` (DequantizeLinear)", "scale 0.05", "scale 0.5", "agree"],
        ),
    ];
    for (what, f, needles) in cases {
        expect_error(what, fuzzing::onnx(&build(&*f)), &needles);
    }
}

/// Malformed uses of onnxruntime's com.microsoft integer operators
/// (QLinearMul, QLinearSoftmax, QLinearAveragePool, QLinearSigmoid): an
/// error naming the node and what mncc reads, never a panic.
#[test]
fn malformed_contrib_quantized_models() {
    // input -> QuantizeLinear -> `op` (com.microsoft) -> DequantizeLinear
    let build = |op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, shape: &[i64]| -> Vec<u8> {
        let mut m = Model::new(13, shape);
        m.init("xs", &[], vec![0.02]);
        m.init_raw("xz", &[], 2, vec![128]);
        m.init("ys", &[], vec![0.05]);
        m.init_raw("yz", &[], 2, vec![100]);
        m.init("zero", &[], vec![0.0]);
        m.init_raw("yz8", &[], 3, vec![0]);
        m.init_raw("k", &[1, 3, 4, 4], 2, vec![7; 48]);
        m.init_i64("rows", &[2], vec![1, 10]);
        m.node("QuantizeLinear", "q", &["input", "xs", "xz"], vec![]);
        // `r_out`: the input as [1, 10] (from [1, 10, 1, 1]).
        if shape == [1, 10, 1, 1] {
            m.node("Reshape", "r", &["q_out", "rows"], vec![]);
        }
        m.node(op, "op", inputs, attrs);
        let k = m.nodes.len() - 1;
        m.nodes[k].domain = "com.microsoft".into();
        m.node("DequantizeLinear", "dq", &["op_out", "ys", "yz"], vec![]);
        m.bytes("dq_out")
    };
    let mul = ["q_out", "xs", "xz", "q_out", "xs", "xz", "ys", "yz"];
    fuzzing::onnx(&build("QLinearMul", &mul, vec![], &[1, 3, 4, 4])).expect("QLinearMul compiles");
    let sm = ["r_out", "xs", "xz", "ys", "yz"];
    fuzzing::onnx(&build("QLinearSoftmax", &sm, vec![int("opset", 13)], &[1, 10, 1, 1]))
        .expect("QLinearSoftmax compiles");
    let pool = ["q_out", "xs", "xz", "ys", "yz"];
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "QLinearMul by a constant",
            build(
                "QLinearMul",
                &["q_out", "xs", "xz", "k", "xs", "xz", "ys", "yz"],
                vec![],
                &[1, 3, 4, 4],
            ),
            vec!["node `op` (QLinearMul)", "a constant factor is not supported"],
        ),
        (
            "QLinearMul to a zero scale",
            build(
                "QLinearMul",
                &["q_out", "xs", "xz", "q_out", "xs", "xz", "zero", "yz"],
                vec![],
                &[1, 3, 4, 4],
            ),
            vec!["node `op` (QLinearMul)", "scale 0"],
        ),
        (
            "QLinearSoftmax without its opset attribute",
            build("QLinearSoftmax", &sm, vec![], &[1, 10, 1, 1]),
            vec!["node `op` (QLinearSoftmax)", "opset attribute is missing"],
        ),
        (
            "QLinearSoftmax over a feature map",
            build("QLinearSoftmax", &pool, vec![int("opset", 13)], &[1, 3, 4, 4]),
            vec!["node `op` (QLinearSoftmax)", "only the last axis of a [n, k] input"],
        ),
        (
            "QLinearAveragePool with a 2x2 window",
            build(
                "QLinearAveragePool",
                &pool,
                vec![ints("kernel_shape", &[2, 2])],
                &[1, 3, 4, 4],
            ),
            vec![
                "node `op` (QLinearAveragePool)",
                "only an average over the whole 4x4 input",
            ],
        ),
        (
            "QLinearSigmoid from uint8 to int8",
            build(
                "QLinearSigmoid",
                &["q_out", "xs", "xz", "ys", "yz8"],
                vec![],
                &[1, 3, 4, 4],
            ),
            vec!["node `op` (QLinearSigmoid)", "must be of one type"],
        ),
    ];
    for (what, bytes, needles) in cases {
        expect_error(what, fuzzing::onnx(&bytes), &needles);
    }
}

/// Malformed dynamic-form models (onnxruntime's quantize_dynamic:
/// DynamicQuantizeLinear, ConvInteger, Cast, the Mul of the scales, the
/// Mul, the bias Add): each departure from the pattern mncc reads is an
/// error naming the node and what it expected, never a panic.
#[test]
fn malformed_dynamic_models() {
    // input -> DynamicQuantizeLinear -> ConvInteger (1x1, 3 -> 4) -> Cast
    // -> Mul by (x_scale * w_scale) -> Add bias
    let build = |f: &dyn Fn(&mut Model)| -> Vec<u8> {
        let mut m = Model::new(13, &[1, 3, 4, 4]);
        m.init_raw("w", &[4, 3, 1, 1], 2, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        m.init_raw("wz", &[], 2, vec![7]);
        m.init("ws", &[], vec![0.01]);
        m.init("b", &[4, 1, 1], vec![0.1, 0.2, 0.3, 0.4]);
        m.node("DynamicQuantizeLinear", "dql", &["input"], vec![]);
        m.nodes[0].output = vec!["xq".into(), "xs".into(), "xz".into()];
        m.node("ConvInteger", "conv", &["xq", "w", "xz", "wz"], vec![]);
        m.node("Cast", "cast", &["conv_out"], vec![int("to", 1)]);
        m.node("Mul", "scales", &["xs", "ws"], vec![]);
        m.node("Mul", "mul", &["cast_out", "scales_out"], vec![]);
        m.node("Add", "add", &["mul_out", "b"], vec![]);
        f(&mut m);
        m.bytes("add_out")
    };
    fuzzing::onnx(&build(&|_| {})).expect("the dynamic base model compiles");
    type Case<'a> = (&'a str, Box<dyn Fn(&mut Model)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "ConvInteger on a float input",
            Box::new(|m: &mut Model| m.nodes[1].input[0] = "input".into()),
            vec!["node `conv` (ConvInteger)", "on the output of a DynamicQuantizeLinear"],
        ),
        (
            "a constant input zero point",
            Box::new(|m: &mut Model| {
                m.init_raw("z", &[], 2, vec![3]);
                m.nodes[1].input[2] = "z".into();
            }),
            vec!["node `conv` (ConvInteger)", "zero point (input 2) must be the one"],
        ),
        (
            "a weight zero point of another type",
            Box::new(|m: &mut Model| {
                m.init_raw("z8", &[], 3, vec![3]);
                m.nodes[1].input[3] = "z8".into();
            }),
            vec!["node `conv` (ConvInteger)", "zero point (input 3) must be uint8"],
        ),
        (
            "the sums scaled before the Cast",
            Box::new(|m: &mut Model| m.nodes[4].input[0] = "conv_out".into()),
            vec!["node `mul` (Mul)", "before a Cast to float"],
        ),
        (
            "a Cast to int64",
            Box::new(|m: &mut Model| m.nodes[2].attribute = vec![int("to", 7)]),
            vec!["node `cast` (Cast)", "`to`"],
        ),
        (
            "the scale read by a Relu",
            Box::new(|m: &mut Model| {
                m.node("Relu", "relu", &["xs"], vec![]);
                m.nodes[4].input[1] = "relu_out".into();
            }),
            vec![
                "node `relu` (Relu)",
                "scale, zero point or int32 sum of dynamic quantization",
            ],
        ),
        (
            "three weight scales for four channels",
            Box::new(|m: &mut Model| {
                let i = m.inits.iter().position(|t| t.name == "ws").unwrap();
                m.inits[i].dims = vec![3, 1, 1];
                m.inits[i].float_data = vec![0.01, 0.02, 0.03];
            }),
            vec!["node `mul` (Mul)", "the weight scale has shape [3, 1, 1]"],
        ),
        (
            "a zero weight scale",
            Box::new(|m: &mut Model| {
                let i = m.inits.iter().position(|t| t.name == "ws").unwrap();
                m.inits[i].float_data = vec![0.0];
            }),
            vec![
                "node `scales` (Mul)",
                "the weight scale 0 is not a positive finite number",
            ],
        ),
        (
            "the int32 sums as the model output",
            Box::new(|m: &mut Model| {
                m.nodes.truncate(2);
            }),
            vec!["output `conv_out`", "int32 sum of dynamic quantization"],
        ),
    ];
    for (what, f, needles) in cases {
        let bytes = if what == "the int32 sums as the model output" {
            let mut m = Model::new(13, &[1, 3, 4, 4]);
            m.init_raw("w", &[4, 3, 1, 1], 2, vec![1; 12]);
            m.node("DynamicQuantizeLinear", "dql", &["input"], vec![]);
            m.nodes[0].output = vec!["xq".into(), "xs".into(), "xz".into()];
            m.node("ConvInteger", "conv", &["xq", "w", "xz"], vec![]);
            f(&mut m);
            m.bytes("conv_out")
        } else {
            build(&*f)
        };
        expect_error(what, fuzzing::onnx(&bytes), &needles);
    }
}
