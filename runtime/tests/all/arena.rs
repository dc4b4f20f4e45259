//! `ArenaMut`: typed borrows of byte ranges (`get`, `split2`, `split3`,
//! `split_scratch`, `split_at`), panics on overlap, out of range and
//! misfit element types; `align_arena`.
use mncc_runtime::{align_arena, ArenaMut, ARENA_SLACK};
use std::ops::Range;

/// 32 floats `0.0, 1.0, ...` in an arena (from its 64-byte boundary on).
struct Floats(Vec<u8>);

impl Floats {
    fn new() -> Floats {
        let mut buf = vec![0u8; 32 * 4 + ARENA_SLACK];
        {
            let mut a = align_arena(&mut buf);
            for (i, v) in a.get_mut::<f32>(0..128).iter_mut().enumerate() {
                *v = i as f32;
            }
        }
        Floats(buf)
    }
    /// The arena: the 32 floats and up to 63 bytes past them (tests of
    /// the upper bound cut it at 128 with `split_at`).
    fn arena(&mut self) -> ArenaMut<'_> {
        align_arena(&mut self.0)
    }
    fn values(&mut self) -> Vec<f32> {
        self.arena().get::<f32>(0..128).to_vec()
    }
}

/// Float range `r` in bytes.
fn b(r: Range<usize>) -> Range<usize> {
    r.start * 4..r.end * 4
}

fn floats(r: Range<usize>) -> Vec<f32> {
    r.map(|i| i as f32).collect()
}

#[test]
fn split2_input_before_and_after_output() {
    let mut f = Floats::new();
    {
        let mut a = f.arena();
        let (input, out) = a.split2::<f32, f32>(b(0..8), b(8..20));
        assert_eq!(input, &floats(0..8)[..]);
        assert_eq!(out.len(), 12);
        assert_eq!(out[0], 8.0);
        for (o, &x) in out.iter_mut().zip(input) {
            *o = -x;
        }
    }
    let v = f.values();
    assert_eq!(&v[8..16], &[-0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0]);
    assert_eq!(v[16], 16.0);
    assert_eq!(v[7], 7.0);

    let mut f = Floats::new();
    {
        let mut a = f.arena();
        let (input, out) = a.split2::<f32, f32>(b(20..32), b(4..10));
        assert_eq!(input[0], 20.0);
        assert_eq!(input.len(), 12);
        out.fill(100.0);
    }
    let v = f.values();
    assert_eq!(&v[3..11], &[3.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 10.0]);
    // Adjacent ranges touching at both ends of the arena.
    let mut f = Floats::new();
    let mut a = f.arena();
    let (input, out) = a.split2::<f32, f32>(b(16..32), b(0..16));
    assert_eq!((input.len(), out.len(), input[0], out[0]), (16, 16, 16.0, 0.0));
}

#[test]
fn split2_empty_ranges_overlap_nothing() {
    let mut f = Floats::new();
    let mut a = f.arena();
    let (input, out) = a.split2::<f32, f32>(b(5..5), b(0..32));
    assert!(input.is_empty());
    assert_eq!(out.len(), 32);
    let (input, out) = a.split2::<f32, f32>(b(0..32), b(7..7));
    assert_eq!(input.len(), 32);
    assert!(out.is_empty());
}

#[test]
fn tensors_of_other_types() {
    let mut f = Floats::new();
    let mut a = f.arena();
    // The bytes of 1.0f32 (little-endian) as i8s and as one i32.
    let (x, y) = a.split2::<i8, i32>(b(1..2), b(2..3));
    assert_eq!(x, &[0, 0, -128, 63]);
    assert_eq!(y, &[2.0f32.to_bits() as i32]);
    let u: &[u8] = a.get(3..7);
    assert_eq!(u, &[0, 0, 0, 0x80]);
}

#[test]
fn split3_shared_inputs_may_overlap_each_other() {
    let mut f = Floats::new();
    {
        let mut a = f.arena();
        let (x, y, out) = a.split3::<f32, f32, f32>(b(0..8), b(4..12), b(12..20));
        assert_eq!((x[4], y[0]), (4.0, 4.0));
        for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
            *o = p + q;
        }
    }
    let v = f.values();
    assert_eq!(v[12], 4.0);
    assert_eq!(v[19], 7.0 + 11.0);
    assert_eq!(v[20], 20.0);

    // Inputs on both sides of the output, and identical inputs.
    let mut f = Floats::new();
    let mut a = f.arena();
    let (x, y, out) = a.split3::<f32, f32, f32>(b(0..4), b(28..32), b(4..28));
    assert_eq!((x[3], y[0], out.len()), (3.0, 28.0, 24));
    let (x, y, out) = a.split3::<f32, f32, f32>(b(10..20), b(10..20), b(20..30));
    assert_eq!((x, out.len()), (y, 10));
}

#[test]
#[should_panic(expected = "split2: input range 0..36 overlaps output range 32..64")]
fn split2_overlap_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split2::<f32, f32>(b(0..9), b(8..16));
}

#[test]
#[should_panic(expected = "overlaps output range")]
fn split2_input_inside_output_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split2::<f32, f32>(b(10..12), b(8..16));
}

#[test]
#[should_panic(expected = "overlaps output range")]
fn split2_output_inside_input_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split2::<f32, f32>(b(0..32), b(8..16));
}

#[test]
#[should_panic(expected = "split2: output range 120..132 is not inside the arena")]
fn split2_out_of_range_panics() {
    let mut f = Floats::new();
    let mut a = f.arena();
    let (mut a, _) = a.split_at(128);
    let _ = a.split2::<f32, f32>(b(0..8), b(30..33));
}

#[test]
#[should_panic(expected = "is not inside the arena")]
fn split2_reversed_range_panics() {
    let mut f = Floats::new();
    #[allow(clippy::reversed_empty_ranges)]
    let _ = f.arena().split2::<f32, f32>(32..16, b(10..12));
}

#[test]
#[should_panic(expected = "arena: bytes 2..6 do not hold float32s")]
fn misaligned_element_type_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split2::<u8, f32>(0..1, 2..6);
}

#[test]
#[should_panic(expected = "split3: b range 60..68 overlaps output range 64..96")]
fn split3_b_overlap_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split3::<f32, f32, f32>(b(0..8), b(15..17), b(16..24));
}

#[test]
#[should_panic(expected = "split3: a range 80..120 overlaps output range 64..96")]
fn split3_a_overlap_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split3::<f32, f32, f32>(b(20..30), b(0..8), b(16..24));
}

#[test]
#[should_panic(expected = "split3: a range 0..160 is not inside the arena")]
fn split3_out_of_range_panics() {
    let mut f = Floats::new();
    let mut a = f.arena();
    let (mut a, _) = a.split_at(128);
    let _ = a.split3::<f32, f32, f32>(b(0..40), b(0..8), b(16..24));
}

#[test]
#[should_panic(expected = "split_at: 100 is past the arena's")]
fn split_at_off_a_cache_line_panics() {
    let mut f = Floats::new();
    let _ = f.arena().split_at(100);
}

/// `align_arena` starts on a 64-byte boundary at most `ARENA_SLACK` bytes
/// in, whatever the arena's address, and keeps the rest.
#[test]
fn align_arena_skips_to_a_cache_line() {
    let mut buf = vec![0u8; 256 + 128];
    for shift in 0..128 {
        let arena = &mut buf[shift..shift + 256];
        let start = arena.as_ptr() as usize;
        let mut a = align_arena(arena);
        let first = a.get_mut::<u8>(0..1).as_ptr() as usize;
        let skipped = first - start;
        assert_eq!(first % 64, 0, "shift {shift}");
        assert!(skipped <= ARENA_SLACK, "shift {shift}: skipped {skipped}");
        assert_eq!(a.len(), 256 - skipped);
    }
    // Shorter than the way to the boundary: empty, no panic.
    let mut short = [0u8; 1];
    let a = align_arena(&mut short);
    assert!(a.len() <= 1);
}

/// Every order of input, scratch and output, and empty input or output
/// (the caller's): each slice is the range asked for.
#[test]
fn split_scratch_every_order() {
    let (i, s, o) = (0..5, 5..12, 12..20);
    let perms = [
        (i.clone(), s.clone(), o.clone()),
        (i.clone(), o.clone(), s.clone()),
        (s.clone(), i.clone(), o.clone()),
        (s.clone(), o.clone(), i.clone()),
        (o.clone(), i.clone(), s.clone()),
        (o.clone(), s.clone(), i.clone()),
        (0..0, 3..9, 20..32),
        (4..9, 10..20, 0..0),
        (0..0, 0..32, 0..0),
    ];
    for (input, scratch, output) in perms {
        let mut f = Floats::new();
        {
            let mut a = f.arena();
            let (x, sc, y) = a.split_scratch::<f32, f32, f32>(b(input.clone()), b(scratch.clone()), b(output.clone()));
            assert_eq!(x, &floats(input.clone())[..], "{input:?} {scratch:?} {output:?}");
            assert_eq!(
                &sc[..],
                &floats(scratch.clone())[..],
                "{input:?} {scratch:?} {output:?}"
            );
            assert_eq!(&y[..], &floats(output.clone())[..], "{input:?} {scratch:?} {output:?}");
            sc.fill(-1.0);
            y.fill(-2.0);
        }
        let v = f.values();
        assert!(v[scratch.clone()].iter().all(|&v| v == -1.0));
        assert!(v[output.clone()].iter().all(|&v| v == -2.0));
    }
}

#[test]
#[should_panic(expected = "split_scratch: scratch range 40..80 overlaps 60..100")]
fn split_scratch_panics_on_scratch_over_output() {
    let mut f = Floats::new();
    let _ = f.arena().split_scratch::<f32, f32, f32>(b(0..5), b(10..20), b(15..25));
}

#[test]
#[should_panic(expected = "split_scratch: input range 0..48 overlaps")]
fn split_scratch_panics_on_input_over_scratch() {
    let mut f = Floats::new();
    let _ = f.arena().split_scratch::<f32, f32, f32>(b(0..12), b(10..20), b(20..25));
}

#[test]
#[should_panic(expected = "split_scratch: input range 72..88 overlaps")]
fn split_scratch_panics_on_input_over_output() {
    let mut f = Floats::new();
    let _ = f.arena().split_scratch::<f32, f32, f32>(b(18..22), b(0..10), b(20..25));
}

#[test]
#[should_panic(expected = "is not inside the arena")]
fn split_scratch_panics_out_of_range() {
    let mut f = Floats::new();
    let mut a = f.arena();
    let (mut a, _) = a.split_at(128);
    let _ = a.split_scratch::<f32, f32, f32>(b(0..5), b(10..40), b(20..25));
}
