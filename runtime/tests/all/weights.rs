//! `Blob`: typed segments of an `Aligned` byte blob.
use mncc_runtime::{Aligned, Blob};

static BLOB: Aligned<[u8; 16]> = Aligned(*b"\x00\x00\x80\x3f\x00\x00\x00\xc0\x00\x00\xc0\x7f\xdb\x0f\x49\x40");

#[test]
fn views_little_endian_f32s() {
    let w = Blob::new(&BLOB).get::<f32>(0..16);
    assert_eq!(w.len(), 4);
    assert_eq!(w[0], 1.0);
    assert_eq!(w[1], -2.0);
    assert!(w[2].is_nan());
    assert_eq!(w[3], core::f32::consts::PI);
    assert_eq!(w.as_ptr() as usize % 64, 0, "view must start on the 64-byte boundary");
    assert_eq!(Blob::new(&BLOB).get::<f32>(4..8), &w[1..2]);
}

#[test]
fn views_other_element_types() {
    let b = Blob::new(&BLOB);
    assert_eq!(b.get::<u8>(0..4), &[0, 0, 0x80, 0x3f]);
    assert_eq!(b.get::<i8>(2..4), &[-128, 63]);
    assert_eq!(b.get::<i32>(0..4), &[1.0f32.to_bits() as i32]);
    assert_eq!(b.get::<u16>(2..4), &[0x3f80]);
}

#[test]
fn round_trips_a_generated_blob() {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 20.5) * 0.37).collect();
    let mut bytes = [0u8; 256];
    for (chunk, v) in bytes.chunks_exact_mut(4).zip(&values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let blob = Box::new(Aligned(bytes));
    assert_eq!(Blob::new(&blob).get::<f32>(0..256), &values[..]);
    assert_eq!(std::mem::align_of_val(&*blob), 64);
}

#[test]
fn empty_blob() {
    static EMPTY: Aligned<[u8; 0]> = Aligned([]);
    assert!(Blob::new(&EMPTY).get::<f32>(0..0).is_empty());
    assert!(Blob::new(&EMPTY).is_empty());
}

#[test]
#[should_panic(expected = "weights: bytes 0..6 of 16 do not hold float32s")]
fn length_not_multiple_of_4_panics() {
    let _ = Blob::new(&BLOB).get::<f32>(0..6);
}

#[test]
#[should_panic(expected = "weights: bytes 2..6 of 16 do not hold float32s")]
fn misaligned_start_panics() {
    let _ = Blob::new(&BLOB).get::<f32>(2..6);
}

#[test]
#[should_panic(expected = "weights: bytes 12..20 of 16 do not hold float32s")]
fn past_the_end_panics() {
    let _ = Blob::new(&BLOB).get::<f32>(12..20);
}
