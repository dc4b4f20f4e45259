//! Proof that a model compiled by `mobilenet!` and the runtime need neither
//! `std` nor an allocator: this crate is `#![no_std]`, never links `alloc`,
//! and `check.sh` builds it as a staticlib for `thumbv7em-none-eabihf` (a
//! Cortex-M4F with no `std` at all) and checks its symbols.
//!
//! All memory is the caller's: the input, the output and the arena are
//! borrowed; the weights are a `static` (flash on a microcontroller).
#![no_std]
#![deny(warnings)]
#![deny(unsafe_code)]

/// mobilenet_v1 alpha 0.25, 96x96 u8 NHWC input, 10 classes, seeded weights.
pub mod model {
    mncc_runtime::mobilenet!("model.toml");
}

/// Classifies one image; `arena` is scratch memory (its contents are
/// irrelevant on entry).
pub fn classify(input: &model::Input, arena: &mut model::Arena) -> model::Output {
    model::classify(input, arena)
}

/// The index of the largest output.
pub fn top1(output: &model::Output) -> usize {
    let mut best = 0;
    for (i, v) in output.iter().enumerate() {
        if *v > output[best] {
            best = i;
        }
    }
    best
}

/// The C entry point of the staticlib (a C caller passes three pointers to
/// buffers of `INPUT_LEN` bytes, `OUTPUT_LEN` floats and `ARENA_LEN` bytes).
/// Safe Rust: references are non-null pointers in the C ABI.
#[allow(unsafe_code)] // `no_mangle` only; there is no unsafe block.
#[no_mangle]
pub extern "C" fn mncc_classify(input: &model::Input, output: &mut model::Output, arena: &mut model::Arena) {
    model::run(input, output, arena);
}

/// Bare metal has no `std` to provide a panic handler. (The kernels panic
/// only on a shape mismatch, which would be a compiler bug.)
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec;

    #[test]
    fn classifies_on_the_host() {
        let mut input: Box<model::Input> = vec![0u8; model::INPUT_LEN].into_boxed_slice().try_into().unwrap();
        for (i, p) in input.iter_mut().enumerate() {
            *p = (i * 31 % 256) as u8;
        }
        let mut arena: Box<model::Arena> = vec![0xffu8; model::ARENA_LEN].into_boxed_slice().try_into().unwrap();
        let out = classify(&input, &mut arena);
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        let mut again = [0.0f32; model::OUTPUT_LEN];
        mncc_classify(&input, &mut again, &mut arena);
        assert_eq!(out, again);
        std::println!("top-1 {} of {:?}; ARENA_LEN {}", top1(&out), out, model::ARENA_LEN);
    }
}
