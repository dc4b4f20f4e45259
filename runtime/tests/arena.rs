//! `split2` / `split3` / `split_scratch`: correct borrows, panics on overlap
//! and out of range.
use mncc_runtime::{split2, split3, split_scratch};

fn arena() -> Vec<f32> {
    (0..32).map(|i| i as f32).collect()
}

#[test]
fn split2_input_before_and_after_output() {
    let mut a = arena();
    {
        let (input, out) = split2(&mut a, 0..8, 8..20);
        assert_eq!(input, &(0..8).map(|i| i as f32).collect::<Vec<_>>()[..]);
        assert_eq!(out.len(), 12);
        assert_eq!(out[0], 8.0);
        for (o, &x) in out.iter_mut().zip(input) {
            *o = -x;
        }
    }
    assert_eq!(&a[8..16], &[-0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0]);
    assert_eq!(a[16], 16.0);
    assert_eq!(a[7], 7.0);

    let mut a = arena();
    {
        let (input, out) = split2(&mut a, 20..32, 4..10);
        assert_eq!(input[0], 20.0);
        assert_eq!(input.len(), 12);
        out.fill(100.0);
    }
    assert_eq!(&a[3..11], &[3.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 10.0]);
    // Adjacent ranges touching at both ends of the arena.
    let mut a = arena();
    let (input, out) = split2(&mut a, 16..32, 0..16);
    assert_eq!((input.len(), out.len(), input[0], out[0]), (16, 16, 16.0, 0.0));
}

#[test]
fn split2_empty_ranges_overlap_nothing() {
    let mut a = arena();
    let (input, out) = split2(&mut a, 5..5, 0..32);
    assert!(input.is_empty());
    assert_eq!(out.len(), 32);
    let (input, out) = split2(&mut a, 0..32, 7..7);
    assert_eq!(input.len(), 32);
    assert!(out.is_empty());
}

#[test]
fn split3_shared_inputs_may_overlap_each_other() {
    let mut a = arena();
    {
        let (x, y, out) = split3(&mut a, 0..8, 4..12, 12..20);
        assert_eq!((x[4], y[0]), (4.0, 4.0));
        for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
            *o = p + q;
        }
    }
    assert_eq!(a[12], 4.0);
    assert_eq!(a[19], 7.0 + 11.0);
    assert_eq!(a[20], 20.0);

    // Inputs on both sides of the output, and identical inputs.
    let mut a = arena();
    let (x, y, out) = split3(&mut a, 0..4, 28..32, 4..28);
    assert_eq!((x[3], y[0], out.len()), (3.0, 28.0, 24));
    let (x, y, out) = split3(&mut a, 10..20, 10..20, 20..30);
    assert_eq!((x, out.len()), (y, 10));
}

#[test]
#[should_panic(expected = "split2: input range 0..9 overlaps output range 8..16")]
fn split2_overlap_panics() {
    let mut a = arena();
    let _ = split2(&mut a, 0..9, 8..16);
}

#[test]
#[should_panic(expected = "overlaps output range")]
fn split2_input_inside_output_panics() {
    let mut a = arena();
    let _ = split2(&mut a, 10..12, 8..16);
}

#[test]
#[should_panic(expected = "overlaps output range")]
fn split2_output_inside_input_panics() {
    let mut a = arena();
    let _ = split2(&mut a, 0..32, 8..16);
}

#[test]
#[should_panic(expected = "split2: output range 30..33 is not inside the arena (length 32)")]
fn split2_out_of_range_panics() {
    let mut a = arena();
    let _ = split2(&mut a, 0..8, 30..33);
}

#[test]
#[should_panic(expected = "is not inside the arena")]
fn split2_reversed_range_panics() {
    let mut a = arena();
    #[allow(clippy::reversed_empty_ranges)]
    let _ = split2(&mut a, 8..4, 10..12);
}

#[test]
#[should_panic(expected = "split3: b range 15..17 overlaps output range 16..24")]
fn split3_b_overlap_panics() {
    let mut a = arena();
    let _ = split3(&mut a, 0..8, 15..17, 16..24);
}

#[test]
#[should_panic(expected = "split3: a range 20..30 overlaps output range 16..24")]
fn split3_a_overlap_panics() {
    let mut a = arena();
    let _ = split3(&mut a, 20..30, 0..8, 16..24);
}

#[test]
#[should_panic(expected = "split3: a range 0..40 is not inside the arena")]
fn split3_out_of_range_panics() {
    let mut a = arena();
    let _ = split3(&mut a, 0..40, 0..8, 16..24);
}
/// `align_arena` starts on a 64-byte boundary at most `ARENA_SLACK` floats
/// in, whatever the arena's address, and keeps the rest.
#[test]
fn align_arena_skips_to_a_cache_line() {
    use mncc_runtime::{align_arena, ARENA_SLACK};
    let mut buf = vec![0.0f32; 64 + 32];
    for shift in 0..32 {
        let arena = &mut buf[shift..shift + 64];
        let start = arena.as_ptr() as usize;
        let a = align_arena(arena);
        let skipped = (a.as_ptr() as usize - start) / 4;
        assert_eq!(a.as_ptr() as usize % 64, 0, "shift {shift}");
        assert!(skipped <= ARENA_SLACK, "shift {shift}: skipped {skipped}");
        assert_eq!(a.len(), 64 - skipped);
    }
    // Shorter than the way to the boundary: empty, no panic.
    let mut short = [0.0f32; 1];
    let _ = align_arena(&mut short);
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
        let mut a = arena();
        let (x, sc, y) = split_scratch(&mut a, input.clone(), scratch.clone(), output.clone());
        let want = |r: &std::ops::Range<usize>| r.clone().map(|v| v as f32).collect::<Vec<_>>();
        assert_eq!(x, &want(&input)[..], "{input:?} {scratch:?} {output:?}");
        assert_eq!(&sc[..], &want(&scratch)[..], "{input:?} {scratch:?} {output:?}");
        assert_eq!(&y[..], &want(&output)[..], "{input:?} {scratch:?} {output:?}");
        sc.fill(-1.0);
        y.fill(-2.0);
        let _ = x;
        assert!(a[scratch.clone()].iter().all(|&v| v == -1.0));
        assert!(a[output.clone()].iter().all(|&v| v == -2.0));
    }
}

#[test]
#[should_panic(expected = "split_scratch: scratch range 10..20 overlaps 15..25")]
fn split_scratch_panics_on_scratch_over_output() {
    let mut a = arena();
    let _ = split_scratch(&mut a, 0..5, 10..20, 15..25);
}

#[test]
#[should_panic(expected = "split_scratch: input range 0..12 overlaps")]
fn split_scratch_panics_on_input_over_scratch() {
    let mut a = arena();
    let _ = split_scratch(&mut a, 0..12, 10..20, 20..25);
}

#[test]
#[should_panic(expected = "split_scratch: input range 18..22 overlaps")]
fn split_scratch_panics_on_input_over_output() {
    let mut a = arena();
    let _ = split_scratch(&mut a, 18..22, 0..10, 20..25);
}

#[test]
#[should_panic(expected = "is not inside the arena")]
fn split_scratch_panics_out_of_range() {
    let mut a = arena();
    let _ = split_scratch(&mut a, 0..5, 10..40, 20..25);
}
