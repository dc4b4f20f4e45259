//! The parallel mode end to end: every model's `run_parallel` gives `run`'s
//! output bit for bit, on the `std` pool (two threads) and on an executor
//! with three participants that cuts every layer into as many chunks as it
//! can (up to twelve).

use mncc_runtime::par::{Parallel, StdPool};

/// Three participants, chunks however small (`min_part_macs` 1), all run on
/// the calling thread: the most splits, deterministic.
struct Inline3;

impl Parallel for Inline3 {
    fn threads(&self) -> usize {
        3
    }
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        a();
        b();
    }
    fn min_part_macs(&self) -> usize {
        1
    }
}

/// Deterministic input values of either element type.
trait Fill {
    fn at(i: usize, seed: u64) -> Self;
}
impl Fill for f32 {
    fn at(i: usize, seed: u64) -> Self {
        let h = (i as u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}
impl Fill for u8 {
    fn at(i: usize, seed: u64) -> Self {
        let h = (i as u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (h >> 56) as u8
    }
}

#[track_caller]
fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: output {i} differs: {g:e} (parallel) vs {w:e} (run)"
        );
    }
}

macro_rules! parallel_equals_serial {
    ($($test:ident => $m:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                use mncc_tests::$m as model;
                let pool = StdPool::new();
                let mut input: Box<model::Input> = vec![Fill::at(0, 0); model::INPUT_LEN].into_boxed_slice().try_into().unwrap();
                let mut arena: Box<model::Arena> = vec![0u8; model::ARENA_LEN].into_boxed_slice().try_into().unwrap();
                let mut want = Box::new([0.0f32; model::OUTPUT_LEN]);
                let mut got = Box::new([0.0f32; model::OUTPUT_LEN]);
                for seed in 0..2u64 {
                    for (i, v) in input.iter_mut().enumerate() {
                        *v = Fill::at(i, seed);
                    }
                    model::run(&input, &mut want, &mut arena);
                    let executors: [(&str, &dyn Parallel); 2] = [("StdPool", &pool), ("3 parts", &Inline3)];
                    for (name, par) in executors {
                        arena.fill(0xff); // must not read stale scratch (every f32 in it a NaN)
                        got.iter_mut().for_each(|v| *v = f32::NAN);
                        model::run_parallel(&input, &mut got, &mut arena, par);
                        same_bits(&format!("{} seed {seed} on {name}", stringify!($m)), &got[..], &want[..]);
                    }
                }
            }
        )*
    };
}

/// The generated code starts its tensors at the arena's first 64-byte
/// boundary: the output is the same wherever the arena is (here at every
/// float offset within a cache line).
#[test]
fn output_does_not_depend_on_the_arena_address() {
    use mncc_tests::v2_035_96 as model;
    let input: Box<model::Input> = (0..model::INPUT_LEN)
        .map(|i| Fill::at(i, 7))
        .collect::<Vec<_>>()
        .into_boxed_slice()
        .try_into()
        .unwrap();
    let mut want = [0.0f32; model::OUTPUT_LEN];
    let mut got = [0.0f32; model::OUTPUT_LEN];
    let mut buf = vec![0xffu8; model::ARENA_LEN + 64];
    for shift in 0..64 {
        let arena: &mut model::Arena = (&mut buf[shift..shift + model::ARENA_LEN]).try_into().unwrap();
        arena.fill(0xff);
        if shift == 0 {
            model::run(&input, &mut want, arena);
        } else {
            model::run(&input, &mut got, arena);
            same_bits(&format!("arena at byte offset {shift}"), &got, &want);
        }
    }
}

parallel_equals_serial! {
    keras_v1 => keras_v1,
    v1_025_128_u8 => v1_025_128_u8,
    v2_035_96 => v2_035_96,
}

#[cfg(feature = "all-models")]
parallel_equals_serial! {
    keras_v1_onnx => keras_v1_onnx,
    v1_05_160_f32 => v1_05_160_f32,
    v1_075_192 => v1_075_192,
    v1_14_96 => v1_14_96,
    v2_05_128_f32 => v2_05_128_f32,
    v2_075_160 => v2_075_160,
    v2_13_192 => v2_13_192,
    v1_075_192_amx => v1_075_192_amx,
    v2_13_192_amx => v2_13_192_amx,
}
