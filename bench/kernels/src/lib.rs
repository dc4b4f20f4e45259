//! Shared by the kernel benchmarks (`src/main.rs`, `src/bin/dw.rs`,
//! `src/bin/conv.rs`): seeded test data, 64-byte aligned buffers (as the
//! generated code's tensors are), medians.
#![forbid(unsafe_code)]

/// `n` floats in [-0.5, 0.5) from a xorshift seeded by `seed`.
pub fn fill(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

/// The median of `v` (sorts it).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `n` floats starting on a 64-byte boundary, inside a larger vector.
pub struct Aligned {
    v: Vec<f32>,
    at: usize,
    n: usize,
}

impl Aligned {
    /// A copy of `x`, 64-byte aligned.
    pub fn new(x: &[f32]) -> Aligned {
        let mut v = vec![0.0f32; x.len() + 16];
        let at = (16 - (v.as_ptr() as usize / 4) % 16) % 16;
        v[at..at + x.len()].copy_from_slice(x);
        Aligned { v, at, n: x.len() }
    }
    /// The values.
    pub fn get(&self) -> &[f32] {
        &self.v[self.at..self.at + self.n]
    }
    /// The values, mutably.
    pub fn get_mut(&mut self) -> &mut [f32] {
        &mut self.v[self.at..self.at + self.n]
    }
}
