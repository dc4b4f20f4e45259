//! `f32_view` on an `Aligned` byte blob.
use mncc_runtime::{f32_view, Aligned};

static BLOB: Aligned<[u8; 16]> = Aligned(*b"\x00\x00\x80\x3f\x00\x00\x00\xc0\x00\x00\xc0\x7f\xdb\x0f\x49\x40");

#[test]
fn views_little_endian_f32s() {
    let w = f32_view(&BLOB);
    assert_eq!(w.len(), 4);
    assert_eq!(w[0], 1.0);
    assert_eq!(w[1], -2.0);
    assert!(w[2].is_nan());
    assert_eq!(w[3], core::f32::consts::PI);
    assert_eq!(w.as_ptr() as usize % 64, 0, "view must start on the 64-byte boundary");
}

#[test]
fn round_trips_a_generated_blob() {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 20.5) * 0.37).collect();
    let mut bytes = [0u8; 256];
    for (chunk, v) in bytes.chunks_exact_mut(4).zip(&values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let blob = Box::new(Aligned(bytes));
    assert_eq!(f32_view(&blob), &values[..]);
    assert_eq!(std::mem::align_of_val(&*blob), 64);
}

#[test]
fn empty_blob() {
    static EMPTY: Aligned<[u8; 0]> = Aligned([]);
    assert!(f32_view(&EMPTY).is_empty());
}

#[test]
#[should_panic(expected = "f32_view: weight blob length 6 is not a multiple of 4")]
fn length_not_multiple_of_4_panics() {
    let blob = Aligned([0u8; 6]);
    let _ = f32_view(&blob);
}
