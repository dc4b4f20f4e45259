//! `f32` math that `core` lacks (there is no libm in `no_std`).

/// `log2(e)`.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// High part of `ln 2` (`0.693145751953125` exactly): 16 significant bits,
/// so `k * LN2_HI` is exact for `|k| < 2^8`.
const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 - LN2_HI` (`1.42860682e-6`), rounded to `f32`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// Above this, `e^x` overflows `f32` (`ln(f32::MAX)` rounded down).
const EXP_HI: f32 = 88.722_83;
/// Below this, `e^x` rounds to zero (`ln(2^-150)`).
const EXP_LO: f32 = -103.972_08;

/// `e^x`, accurate to about one ulp for normal results (relative error below
/// `2e-7` on `[-88, 88]`, checked by the tests against `f64::exp`).
///
/// Range reduction `x = k ln 2 + r` with `|r| <= ln 2 / 2` (Cody–Waite, two
/// part `ln 2`), a degree-7 Taylor polynomial for `e^r` (truncation error
/// `< 6e-9`), and a scaling by `2^k` built from the exponent bits, in one
/// rounding even for subnormal results.
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > EXP_HI {
        return f32::INFINITY;
    }
    if x < EXP_LO {
        return 0.0;
    }
    // Round to nearest; |x * LOG2E| < 151, so the cast cannot saturate.
    let t = x * LOG2E;
    let k = (t + if t < 0.0 { -0.5 } else { 0.5 }) as i32;
    let kf = k as f32;
    // x - k*LN2_HI is exact (Sterbenz-like cancellation), the LN2_LO term
    // adds one rounding of a tiny value.
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    // e^r = 1 + r + r^2 * (1/2 + r/6 + r^2/24 + ... + r^5/5040), Horner form.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let y = 1.0 + (r + r * r * p);
    // k is in [-150, 128]. Scale by 2^k with exact powers of two, so that the
    // only rounding is the final one (which may be to a subnormal).
    if k > 127 {
        // y * 2^128 = (y * 2) * 2^127; y*2 is exact.
        (y * 2.0) * pow2(127)
    } else if k >= -149 {
        y * pow2(k)
    } else {
        // k == -150: y * 2^-150 = (y / 2) * 2^-149, y/2 exact (y is normal).
        (y * 0.5) * pow2(-149)
    }
}

/// `2^k` for `k` in `-149..=127`, exactly (subnormal below `-126`).
#[inline(always)]
fn pow2(k: i32) -> f32 {
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (k + 149))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::exp;

    /// Relative error of `exp(x)` against `f64::exp` (the reference, rounded
    /// nowhere), for a result that is normal in `f32`.
    fn rel_err(x: f32) -> f64 {
        let want = (x as f64).exp();
        let got = exp(x) as f64;
        ((got - want) / want).abs()
    }

    #[test]
    fn exp_relative_error_dense_on_softmax_range() {
        // Every 97th f32 in [-88, 0] (~11.5 M values), plus the ends.
        let mut worst = (0.0f64, 0.0f32);
        let lo = (-88.0f32).to_bits();
        let mut bits = 0x8000_0000u32; // -0.0
        while bits <= lo {
            let x = f32::from_bits(bits);
            let e = rel_err(x);
            if e > worst.0 {
                worst = (e, x);
            }
            bits += 97;
        }
        // The ends, the normal/subnormal boundary, and the floats around
        // -ln(2)/2 where the rounding of k flips.
        let half_ln2 = (-core::f64::consts::LN_2 / 2.0) as f32;
        let mut specials = std::vec![-88.0f32, -87.5, -87.33655, -0.0, 0.0, -1e-30];
        for d in 0..8u32 {
            specials.push(f32::from_bits(half_ln2.to_bits() - 4 + d));
        }
        for x in specials {
            let e = rel_err(x);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        std::println!("exp: worst relative error {:e} at x = {}", worst.0, worst.1);
        assert!(worst.0 < 2e-7, "exp: relative error {:e} at x = {}", worst.0, worst.1);
    }

    /// Every f32 in [-88, 88] (about 2.2e9 values; run with `--ignored`).
    #[test]
    #[ignore = "exhaustive, about two minutes in release"]
    fn exp_relative_error_exhaustive() {
        let mut worst = (0.0f64, 0.0f32);
        let mut worst_normal = (0.0f64, 0.0f32);
        for sign in [0u32, 0x8000_0000] {
            for bits in 0..=88.0f32.to_bits() {
                let x = f32::from_bits(bits | sign);
                let e = rel_err(x);
                if e > worst.0 {
                    worst = (e, x);
                }
                if e > worst_normal.0 && exp(x) >= f32::MIN_POSITIVE {
                    worst_normal = (e, x);
                }
            }
        }
        std::println!("exp: worst relative error {:e} at x = {}", worst.0, worst.1);
        std::println!(
            "exp: worst relative error for normal results {:e} at x = {}",
            worst_normal.0,
            worst_normal.1
        );
        assert!(worst.0 < 2e-7, "exp: relative error {:e} at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_relative_error_positive() {
        let mut x = 0.0f32;
        while x < 88.7 {
            let e = rel_err(x);
            assert!(e < 2e-7, "exp({x}): relative error {e:e}");
            x += 0.000_731;
        }
    }

    #[test]
    fn exp_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.72).is_finite());
        // Deep subnormal results: within one subnormal step of the truth.
        for x in [-100.0f32, -103.0, -103.9, -95.5, -90.0] {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!((got - want).abs() <= 1.5e-45, "exp({x}) = {got:e}, want {want:e}");
        }
        // Monotone across the subnormal boundary.
        let mut prev = 0.0f32;
        let mut x = -104.0f32;
        while x < -80.0 {
            let y = exp(x);
            assert!(y >= prev, "exp not monotone at {x}");
            prev = y;
            x += 0.001;
        }
    }
}
