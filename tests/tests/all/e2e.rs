//! End to end: TOML -> `mobilenet!` -> compiled Rust, compared over the
//! whole output tensor with the reference interpreter (f64) and, for the
//! pretrained model, with onnxruntime's outputs saved as fixtures.
//!
//! Tolerance everywhere: max abs error <= 1e-4 * max(1, max|reference|).

use mncc::interp::{self, InputData};
use mncc_cli::harness::{compare, Comparison};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn report(what: &str, c: &Comparison) {
    println!(
        "{what}: max abs {:.3e}, max rel {:.3e} (tolerance {:.3e}), top-1 {} vs {}",
        c.max_abs, c.max_rel, c.tolerance, c.argmax.0, c.argmax.1
    );
}

fn check(what: &str, got: &[f32], reference: &[f64]) {
    let c = compare(got, reference);
    report(what, &c);
    assert!(
        c.ok(),
        "{what}: max abs error {:.3e} > tolerance {:.3e}",
        c.max_abs,
        c.tolerance
    );
}

/// One test per `test => model`: the seeded model on three inputs,
/// compared with the interpreter.
macro_rules! seeded {
    ($($test:ident => $m:ident),* $(,)?) => {$(
        #[test]
        fn $test() {
            use mncc_tests::$m as model;
            let m = mncc::load(&root().join(model::SOURCE)).unwrap();
            let mut arena = vec![0u8; model::ARENA_LEN].into_boxed_slice();
            let arena: &mut model::Arena = (&mut arena[..]).try_into().unwrap();
            for seed in 0..3u64 {
                let x = InputData::random(m.graph.input.dtype, model::INPUT_LEN, seed);
                let want = interp::run(&m.graph, &x).unwrap();
                arena.fill(0xff); // must not read stale scratch (every f32 in it a NaN)
                let got = model::classify(input_of(&x).try_into().unwrap(), arena);
                check(&format!("{} seed {seed}", stringify!($m)), &got, &want);
                // Seeded weights are calibrated: outputs neither vanish nor explode.
                let spread = want.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                    - want.iter().cloned().fold(f64::INFINITY, f64::min);
                assert!(
                    spread > 1e-3 && spread < 1e4,
                    "{}: output spread {spread}",
                    stringify!($m)
                );
            }
        }
    )*};
}

trait AsInput<T> {
    fn get(&self) -> &[T];
}
impl AsInput<f32> for InputData {
    fn get(&self) -> &[f32] {
        match self {
            InputData::F32(v) => v,
            InputData::U8(_) => panic!("model takes f32"),
        }
    }
}
impl AsInput<u8> for InputData {
    fn get(&self) -> &[u8] {
        match self {
            InputData::U8(v) => v,
            InputData::F32(_) => panic!("model takes u8"),
        }
    }
}
fn input_of<T>(x: &InputData) -> &[T]
where
    InputData: AsInput<T>,
{
    x.get()
}

seeded! {
    v1_025_128_u8_nhwc_tf_same => v1_025_128_u8,
    v2_035_96_u8_nhwc => v2_035_96,
}

#[cfg(feature = "all-models")]
seeded! {
    v1_05_160_f32_nchw_relu => v1_05_160_f32,
    v1_075_192_f32_nhwc_softmax => v1_075_192,
    v1_14_96_u8_nchw => v1_14_96,
    v2_05_128_f32_nchw_tf_same => v2_05_128_f32,
    v2_075_160_f32_softmax_1001 => v2_075_160,
    v2_13_192_u8_nchw => v2_13_192,
    v1_075_192_on_amx => v1_075_192_amx,
    v2_13_192_on_amx => v2_13_192_amx,
}

/// The models compiled for `x86-64-amx` run their pointwise layers on the
/// tiles where the CPU has them (or `MNCC_REQUIRE_ISA` names `amx`).
#[cfg(feature = "all-models")]
#[test]
fn amx_models_run_on_the_tiles() {
    use mncc_runtime::isa::{self, Isa};
    let required = std::env::var("MNCC_REQUIRE_ISA").is_ok_and(|r| r.split(',').any(|i| i.trim() == "amx"));
    if isa::detected() != Isa::Amx {
        assert!(
            !required,
            "MNCC_REQUIRE_ISA names amx but this CPU has at most {:?}",
            isa::detected()
        );
        eprintln!("skipping: this CPU has no AMX tiles");
        return;
    }
    let before = isa::calls(Isa::Amx);
    let input = vec![128u8; mncc_tests::v2_13_192_amx::INPUT_LEN];
    let mut arena = vec![0u8; mncc_tests::v2_13_192_amx::ARENA_LEN].into_boxed_slice();
    let _ = mncc_tests::v2_13_192_amx::classify(
        input.as_slice().try_into().unwrap(),
        (&mut arena[..]).try_into().unwrap(),
    );
    assert!(isa::calls(Isa::Amx) > before, "no AMX kernel call ran");
}

/// The pretrained model against onnxruntime on the six photos (fixtures made
/// by tests/fixtures/make_keras_v1_fixtures.py), and the interpreter too.
#[test]
fn keras_v1_matches_onnxruntime_on_photos() {
    use mncc_tests::keras_v1 as model;
    let m = mncc::load(&root().join("../examples/models/mobilenet_v1_0.25_224.toml")).unwrap();
    let dir = root().join("fixtures/keras_v1");
    let mut arena = vec![0u8; model::ARENA_LEN].into_boxed_slice();
    let arena: &mut model::Arena = (&mut arena[..]).try_into().unwrap();
    for stem in ["cat", "dog", "finch", "grace_hopper", "hot_dog", "parrot"] {
        let x = mncc_cli::npy::read(&dir.join(format!("{stem}.input.npy"))).unwrap();
        let mncc_cli::npy::NpyData::U8(pixels) = x.data else {
            panic!("u8 input expected")
        };
        let ort = mncc_cli::npy::read(&dir.join(format!("{stem}.probs.npy")))
            .unwrap()
            .to_f64();
        let got = model::classify(pixels.as_slice().try_into().unwrap(), arena);
        check(&format!("{stem}: generated vs onnxruntime"), &got, &ort);
        let c = compare(&got, &ort);
        assert_eq!(c.argmax.0, c.argmax.1, "{stem}: top-1 differs from onnxruntime");
        let want = interp::run(&m.graph, &InputData::U8(pixels)).unwrap();
        check(&format!("{stem}: generated vs interpreter"), &got, &want);
        let i = compare(&want.iter().map(|&v| v as f32).collect::<Vec<_>>(), &ort);
        report(&format!("{stem}: interpreter vs onnxruntime"), &i);
        assert!(i.ok());
    }
}

/// The parrot must be a macaw (ImageNet class 88).
#[test]
fn parrot_is_a_macaw() {
    let dir = root().join("fixtures/keras_v1");
    let x = mncc_cli::npy::read(&dir.join("parrot.input.npy")).unwrap();
    let mncc_cli::npy::NpyData::U8(pixels) = x.data else {
        panic!()
    };
    let mut arena = vec![0u8; mncc_tests::keras_v1::ARENA_LEN].into_boxed_slice();
    let out = mncc_tests::keras_v1::classify(
        pixels.as_slice().try_into().unwrap(),
        (&mut arena[..]).try_into().unwrap(),
    );
    let top = out.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    assert_eq!(top.0, 88, "parrot classified as {} ({})", top.0, top.1);
    assert!(*top.1 > 0.98, "macaw probability {}", top.1);
}

/// The ONNX export of the pretrained model, compiled by `mobilenet!`, on the
/// six photos against onnxruntime (same input as the fixtures: NCHW floats
/// x / 127.5 - 1).
#[cfg(feature = "all-models")]
#[test]
fn keras_v1_onnx_matches_onnxruntime_on_photos() {
    use mncc_tests::keras_v1_onnx as model;
    let dir = root().join("fixtures/keras_v1");
    let mut arena = vec![0u8; model::ARENA_LEN].into_boxed_slice();
    let arena: &mut model::Arena = (&mut arena[..]).try_into().unwrap();
    for stem in ["cat", "dog", "finch", "grace_hopper", "hot_dog", "parrot"] {
        let x = mncc_cli::npy::read(&dir.join(format!("{stem}.input.npy"))).unwrap();
        let mncc_cli::npy::NpyData::U8(px) = x.data else {
            panic!("u8 input expected")
        };
        let mut input = vec![0.0f32; model::INPUT_LEN];
        for (i, &v) in px.iter().enumerate() {
            input[(i % 3) * 224 * 224 + i / 3] = v as f32 / 127.5 - 1.0;
        }
        let ort = mncc_cli::npy::read(&dir.join(format!("{stem}.probs.npy")))
            .unwrap()
            .to_f64();
        let got = model::classify(input.as_slice().try_into().unwrap(), arena);
        check(&format!("{stem}: ONNX-compiled vs onnxruntime"), &got, &ort);
        let c = compare(&got, &ort);
        assert_eq!(c.argmax.0, c.argmax.1, "{stem}: top-1 differs from onnxruntime");
    }
}
