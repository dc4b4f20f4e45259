//! The pretrained MobileNet v1 (alpha 0.25, 224x224, Keras ImageNet weights),
//! compiled by mncc, classifying a photo baked into flash on an Arm
//! Cortex-M4F; prints the top-5 through semihosting and exits.
//!
//! ```text
//! cd examples/cortex-m
//! cargo run --release                          # the firmware, under qemu-system-arm (mps2-an386)
//! cargo run --release --target x86_64-unknown-linux-gnu   # the same code on the host
//! ```
//!
//! Memory: the weights (one `static` in the generated module) and the photo
//! stay in flash, read in place; the arena is a zeroed `static` in RAM
//! (.bss) whose size is the generated `ARENA_LEN`; the output is on the
//! stack. No allocator is linked.
//!
//! Both builds print the same report; `.ci/cortex-m.sh` compares them. The
//! firmware also checks its top-5 against the reference interpreter's (run
//! on the host by build.rs on the same bytes) and exits with status 1 on a
//! mismatch. On the board, the inference is timed with SysTick at the core
//! clock (25 MHz on the MPS2; under `qemu -icount shift=0` one instruction is
//! one nanosecond, so instructions = 40 x ticks).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use core::fmt;

/// The generated module (build.rs), plus a view of its private weights.
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));

    /// The weight blob, to show where it lives.
    pub fn weight_bytes() -> &'static [u8] {
        &WEIGHTS.0
    }
}

/// The reference top-5 (build.rs).
mod reference {
    include!(concat!(env!("OUT_DIR"), "/reference.rs"));
}

/// The photo, preprocessed on the host exactly as `examples/classify.rs`
/// does it (build.rs): raw RGB bytes, in flash.
static PHOTO: &model::Input = include_bytes!(concat!(env!("OUT_DIR"), "/photo.rgb"));

/// ImageNet class names, one per line.
static LABELS: &str = include_str!("../../labels/imagenet_classes.txt");

macro_rules! say {
    ($($arg:tt)*) => { out(format_args!($($arg)*)) };
}

#[cfg(target_os = "none")]
fn out(args: fmt::Arguments) {
    cortex_m_semihosting::hprintln!("{}", args);
}

#[cfg(not(target_os = "none"))]
fn out(args: fmt::Arguments) {
    println!("{args}");
}

/// A probability (or any value of magnitude below 400) with 7 decimals,
/// without core's float formatting (which would add ~20 KiB of code).
struct Fixed7(f32);

impl fmt::Display for Fixed7 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0.0 { "-" } else { "" };
        let units = (self.0.abs() * 1e7 + 0.5) as u32;
        write!(f, "{sign}{}.{:07}", units / 10_000_000, units % 10_000_000)
    }
}

/// The 5 largest outputs, largest first; ties in index order (as a stable
/// sort, e.g. `examples/classify.rs`'s).
fn top5(probs: &model::Output) -> [usize; 5] {
    let mut top = [usize::MAX; 5];
    for (i, &p) in probs.iter().enumerate() {
        let mut k = 5;
        while k > 0 && (top[k - 1] == usize::MAX || p > probs[top[k - 1]]) {
            k -= 1;
        }
        if k < 5 {
            top.copy_within(k..4, k + 1);
            top[k] = i;
        }
    }
    top
}

/// Prints the model, the memory it uses and the top-5; checks them against
/// the reference. Returns whether they match.
fn report(probs: &model::Output) -> bool {
    let weights = model::weight_bytes();
    say!(
        "mncc Cortex-M example: {} ({}) on {}",
        model::NAME,
        reference::MODEL,
        reference::PHOTO
    );
    say!(
        "model: {} MACs, {} parameters, {} classes",
        model::MACS,
        model::PARAMS,
        model::OUTPUT_LEN
    );
    say!(
        "memory: weights {} bytes at {:#010x}, photo {} bytes at {:#010x}, arena {} bytes",
        weights.len(),
        weights.as_ptr() as usize,
        PHOTO.len(),
        PHOTO.as_ptr() as usize,
        model::ARENA_LEN
    );
    say!("top-5:");
    let top = top5(probs);
    for (rank, &i) in top.iter().enumerate() {
        let label = LABELS.lines().nth(i).unwrap_or("?");
        say!(
            "top5 {} class {:>4} p {} bits {:#010x} {}",
            rank + 1,
            i,
            Fixed7(probs[i]),
            probs[i].to_bits(),
            label
        );
    }
    // Same classes as the reference, each within the tolerance.
    let mut ok = true;
    let mut max_diff = 0.0f32;
    for &(class, p) in &reference::TOP5 {
        let d = (probs[class] - p).abs();
        max_diff = if d.is_nan() { f32::INFINITY } else { max_diff.max(d) };
        if !top.contains(&class) {
            say!(
                "MISMATCH: reference class {} (p {}) is not in the top-5",
                class,
                Fixed7(p)
            );
            ok = false;
        }
    }
    ok &= max_diff <= reference::TOLERANCE;
    say!(
        "reference (mncc's f64 interpreter on the host, same bytes): max |p - p_ref| {} (tolerance {}): {}",
        Fixed7(max_diff.min(399.0)),
        Fixed7(reference::TOLERANCE),
        if ok { "ok" } else { "MISMATCH" }
    );
    ok
}

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    let mut arena: Box<model::Arena> = vec![0; model::ARENA_LEN].into_boxed_slice().try_into().unwrap();
    let mut probs = [0.0f32; model::OUTPUT_LEN];
    let start = std::time::Instant::now();
    model::run(PHOTO, &mut probs, &mut arena);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let ok = report(&probs);
    say!("host: {} ({:.2} ms)", std::env::consts::ARCH, ms);
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// The Cortex-M side: entry point, SysTick clock, fault and panic handlers.
#[cfg(target_os = "none")]
mod board {
    use super::{model, report, PHOTO};
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::{syst::SystClkSource, SYST};
    use cortex_m_rt::{entry, exception, ExceptionFrame};
    use cortex_m_semihosting::{debug, hprintln};

    /// SysTick's largest reload (it is a 24-bit down-counter).
    const RELOAD: u32 = 0x00FF_FFFF;
    /// SysTick wrap-arounds so far.
    static WRAPS: AtomicU32 = AtomicU32::new(0);

    #[exception]
    fn SysTick() {
        WRAPS.fetch_add(1, Ordering::Relaxed);
    }

    /// Core clock ticks since SysTick was started.
    fn ticks() -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Acquire);
            let current = SYST::get_current();
            if WRAPS.load(Ordering::Acquire) == wraps {
                return wraps as u64 * (RELOAD as u64 + 1) + (RELOAD - current) as u64;
            }
        }
    }

    /// Bytes below the stack pointer painted before the inference, to
    /// measure the stack it uses.
    const PAINT: usize = 128 * 1024;
    const PATTERN: u32 = 0x5A5A_A5A5;

    /// Fills up to `PAINT` bytes below the stack pointer (not below
    /// `floor`, the end of the statics) with `PATTERN`; returns the painted
    /// range.
    #[inline(never)]
    #[allow(unsafe_code)]
    fn paint_stack(floor: usize) -> (usize, usize) {
        let sp = cortex_m::register::msp::read() as usize;
        let bottom = (sp.saturating_sub(PAINT).max(floor) + 3) & !3;
        // This function's own frame may be pushed after the read: keep clear.
        let top = sp - 256;
        let mut a = bottom;
        while a + 4 <= top {
            // SAFETY: [bottom, top) is RAM between the statics and this
            // function's frame: memory nothing uses (an interrupt's frame
            // pushed there is dead once it returns).
            unsafe { (a as *mut u32).write_volatile(PATTERN) };
            a += 4;
        }
        (bottom, sp)
    }

    /// Bytes of the painted range that were written since: the deepest stack.
    #[allow(unsafe_code)]
    fn stack_used((bottom, sp): (usize, usize)) -> usize {
        let mut a = bottom;
        // SAFETY: reads the range `paint_stack` wrote, all below the stack
        // pointer of this call's caller.
        while a + 4 <= sp && unsafe { (a as *const u32).read_volatile() } == PATTERN {
            a += 4;
        }
        sp - a
    }

    #[entry]
    fn main() -> ! {
        // cortex-m-rt turns this into a `&'static mut` (no `unsafe`): a
        // zeroed `static` in .bss, ARENA_LEN bytes.
        static mut ARENA: model::Arena = [0; model::ARENA_LEN];
        let arena: &'static mut model::Arena = ARENA;

        let mut syst = cortex_m::Peripherals::take().unwrap().SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // Until its first reload, the counter reads 0 (not RELOAD).
        while SYST::get_current() == 0 {}

        let mut probs = [0.0f32; model::OUTPUT_LEN];
        let painted = paint_stack(arena.as_ptr_range().end as usize);
        let start = ticks();
        model::run(PHOTO, &mut probs, arena);
        let elapsed = ticks() - start;
        let stack = stack_used(painted);

        let ok = report(&probs);
        hprintln!(
            "cortex-m: arena at {:#010x}; stack used by the inference: {} bytes (of {} painted)",
            arena.as_ptr() as usize,
            stack,
            painted.1 - painted.0
        );
        hprintln!(
            "cortex-m: one inference: {} SysTick ticks at the core clock (x40 = instructions under qemu -icount shift=0)",
            elapsed
        );
        debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
        loop {
            cortex_m::asm::wfi();
        }
    }

    #[exception]
    #[allow(unsafe_code)] // cortex-m-rt requires HardFault to be an `unsafe fn`
    unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
        hprintln!("hard fault at pc {:#010x}", frame.pc());
        debug::exit(debug::EXIT_FAILURE);
        loop {}
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        hprintln!("panic: {}", info);
        debug::exit(debug::EXIT_FAILURE);
        loop {}
    }
}
