//! Instruction-set selection for the [`crate::simd`] kernels.
//!
//! The kernels pick the best instruction set the CPU has **at run time**
//! (CPUID on x86-64, which works in `no_std`), so a binary built for baseline
//! x86-64 still uses AVX-512 where present and runs correctly where not. Code
//! built with the features enabled at compile time (`-C target-cpu=native`,
//! `-C target-feature=+avx2,+fma`) skips the detection. NEON is part of the
//! aarch64 baseline; every other target uses the portable path.
//!
//! With the `instrument` feature (tests, `mncc verify`, the kernel
//! benchmarks; it needs `std`), `set_limit` caps the choice (tests force the
//! AVX2 or portable path on an AVX-512 machine) and `calls` counts kernel
//! calls per instruction set, so a test can check that the path it claims
//! to test did run. Both are per thread, so tests running at once in one
//! binary do not see each other's cap or calls; a [`crate::par`] call
//! carries the caller's cap to the threads it runs parts on and counts
//! their calls as the caller's. Without the feature (what generated code
//! links by default) neither exists and a kernel's dispatch costs one load
//! of the detected set.

#[cfg(feature = "instrument")]
extern crate std;

use core::sync::atomic::{AtomicU8, Ordering};

/// An instruction set a [`crate::simd`] kernel can run on, ordered from least
/// to most capable within an architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Isa {
    /// Portable Rust on any target (4-lane arrays the compiler may vectorize).
    Portable = 1,
    /// aarch64 Advanced SIMD: 32 registers of 4 lanes.
    Neon = 2,
    /// x86-64 AVX2 and FMA: 16 registers of 8 lanes.
    Avx2 = 3,
    /// x86-64 AVX-512F: 32 registers of 16 lanes.
    Avx512 = 4,
    /// AVX-512 plus the AMX-BF16 tile unit (Sapphire Rapids and later, on
    /// Linux): pointwise layers given an AMX scratch
    /// ([`crate::simd::pointwise`]'s `amx`) run on the tiles, every other
    /// kernel on AVX-512.
    Amx = 5,
}

impl Isa {
    /// All instruction sets, in the order of `calls`' array.
    pub const ALL: [Isa; 5] = [Isa::Portable, Isa::Neon, Isa::Avx2, Isa::Avx512, Isa::Amx];

    fn from_u8(v: u8) -> Isa {
        match v {
            2 => Isa::Neon,
            3 => Isa::Avx2,
            4 => Isa::Avx512,
            5 => Isa::Amx,
            _ => Isa::Portable,
        }
    }

    /// A short lowercase name (`"avx512"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Amx => "amx",
        }
    }
}

/// 0 = not detected yet.
static DETECTED: AtomicU8 = AtomicU8::new(0);
#[cfg(feature = "instrument")]
std::thread_local! {
    /// This thread's cap (0 = none).
    static LIMIT: core::cell::Cell<u8> = const { core::cell::Cell::new(0) };
    /// This thread's kernel calls per instruction set (`Isa as usize - 1`).
    static CALLS: core::cell::Cell<[u32; 5]> = const { core::cell::Cell::new([0; 5]) };
}

/// The best instruction set this CPU supports (detected once, then cached):
/// [`Isa::Amx`] where the tiles are usable (which, on Linux, asks the
/// kernel for the permission to use them once, by `arch_prctl`).
pub fn detected() -> Isa {
    let v = DETECTED.load(Ordering::Relaxed);
    if v != 0 {
        return Isa::from_u8(v);
    }
    let mut isa = detect();
    if isa == Isa::Avx512 && amx_usable() {
        isa = Isa::Amx;
    }
    DETECTED.store(isa as u8, Ordering::Relaxed);
    isa
}

/// The best vector instruction set the kernels use now ([`active`], with
/// [`Isa::Amx`] as [`Isa::Avx512`]: every kernel but the AMX pointwise one
/// runs on AVX-512 there).
#[inline]
pub fn active_vector() -> Isa {
    match active() {
        Isa::Amx => Isa::Avx512,
        i => i,
    }
}

/// Caps the instruction set the kernels this thread calls use (`None`: no
/// cap), and those of the parts a [`crate::par`] call from this thread runs
/// on other threads. A cap above what the CPU has is harmless.
#[cfg(feature = "instrument")]
pub fn set_limit(limit: Option<Isa>) {
    LIMIT.with(|l| l.set(limit.map_or(0, |i| i as u8)));
}
/// The instruction set the kernels use now: [`detected`], capped by
/// `set_limit` (feature `instrument`).
#[inline]
pub fn active() -> Isa {
    let d = detected();
    #[cfg(feature = "instrument")]
    if let l @ 1.. = LIMIT.with(|l| l.get()) {
        return d.min(Isa::from_u8(l));
    }
    d
}

/// Number of [`crate::simd`] kernel calls that ran on `isa` so far on this
/// thread (and for it: the parts of its [`crate::par`] calls).
#[cfg(feature = "instrument")]
pub fn calls(isa: Isa) -> u32 {
    CALLS.with(|c| c.get()[isa as usize - 1])
}

/// Runs `f` as a part of a [`crate::par`] call whose caller had cap `limit`
/// (from [`limit_raw`]): on this thread, with that cap and its own call
/// counts; returns the calls `f` made and leaves this thread's cap and
/// counts as they were (also if `f` panics).
#[cfg(feature = "instrument")]
pub(crate) fn run_part(limit: u8, f: &mut dyn FnMut()) -> [u32; 5] {
    struct Restore(u8, [u32; 5]);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIMIT.with(|l| l.set(self.0));
            CALLS.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(LIMIT.with(|l| l.replace(limit)), CALLS.with(|c| c.replace([0; 5])));
    f();
    CALLS.with(|c| c.get())
}

/// This thread's cap as [`run_part`] takes it.
#[cfg(feature = "instrument")]
pub(crate) fn limit_raw() -> u8 {
    LIMIT.with(|l| l.get())
}

/// Adds the calls of parts ([`run_part`]) to this thread's counts.
#[cfg(feature = "instrument")]
pub(crate) fn add_calls(made: [u32; 5]) {
    CALLS.with(|c| {
        let mut n = c.get();
        for (n, m) in n.iter_mut().zip(made) {
            *n = n.wrapping_add(m);
        }
        c.set(n);
    });
}

/// [`active_vector`], counting one kernel call on it: what every `simd`
/// kernel calls once at entry.
#[inline]
pub(crate) fn active_counted() -> Isa {
    let isa = active_vector();
    count(isa);
    isa
}

/// Counts one kernel call on `isa` (with the `instrument` feature).
#[inline]
pub(crate) fn count(isa: Isa) {
    #[cfg(feature = "instrument")]
    CALLS.with(|c| {
        let mut n = c.get();
        n[isa as usize - 1] = n[isa as usize - 1].wrapping_add(1);
        c.set(n);
    });
    #[cfg(not(feature = "instrument"))]
    let _ = isa;
}

/// Whether the integer kernels may use AVX-512 VNNI (`vpdpbusd`) now:
/// the CPU has AVX-512F/BW and VNNI (CPUID.7.0:EBX bits 16 and 30,
/// ECX bit 11) and the kernels run on AVX-512 ([`active_vector`]: a
/// `set_limit` below it turns VNNI off too).
pub fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: AtomicU8 = AtomicU8::new(0);
        let v = match VNNI.load(Ordering::Relaxed) {
            0 => {
                let has = detected() >= Isa::Avx512 && !cfg!(miri) && {
                    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
                    leaf7.ebx & (1 << 30) != 0 && leaf7.ecx & (1 << 11) != 0
                };
                VNNI.store(if has { 2 } else { 1 }, Ordering::Relaxed);
                has
            }
            v => v == 2,
        };
        v && active_vector() == Isa::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU runs `isa` (what `set_limit` can pick): an
/// instruction set of this architecture at most [`detected`]'s.
pub fn available(isa: Isa) -> bool {
    let arch = match isa {
        Isa::Portable => true,
        Isa::Neon => cfg!(target_arch = "aarch64"),
        Isa::Avx2 | Isa::Avx512 | Isa::Amx => cfg!(target_arch = "x86_64"),
    };
    arch && isa <= detected()
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    // Miri interprets neither CPUID nor the vector intrinsics: the portable
    // vectors are what it checks.
    if cfg!(miri) {
        return Isa::Portable;
    }
    if cfg!(all(target_feature = "avx512f", target_feature = "fma")) {
        return Isa::Avx512;
    }
    use core::arch::x86_64::__cpuid_count;
    let leaf1 = __cpuid_count(1, 0);
    let fma = leaf1.ecx & (1 << 12) != 0;
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    let avx = leaf1.ecx & (1 << 28) != 0;
    if !(fma && osxsave && avx) {
        return Isa::Portable;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available and enabled by the OS.
    let xcr0 = unsafe { xgetbv0() };
    let ymm_os = xcr0 & 0b110 == 0b110; // SSE and AVX state
    let zmm_os = xcr0 & 0b1110_0110 == 0b1110_0110; // plus opmask, ZMM_Hi256, Hi16_ZMM
    let leaf7 = __cpuid_count(7, 0);
    let avx2 = leaf7.ebx & (1 << 5) != 0;
    let avx512f = leaf7.ebx & (1 << 16) != 0;
    if avx2 && avx512f && zmm_os {
        Isa::Avx512
    } else if avx2 && ymm_os {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

/// Whether the AMX-BF16 tiles can be used: AVX-512F/BW, AMX-TILE and
/// AMX-BF16 in CPUID, the tile state enabled in XCR0 by the OS, and, on
/// Linux, the permission to use it granted to this process
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, a raw system
/// call: no libc). Other operating systems: not used.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_usable() -> bool {
    use core::arch::x86_64::__cpuid_count;
    let leaf1 = __cpuid_count(1, 0);
    if leaf1.ecx & (1 << 27) == 0 {
        return false;
    }
    let leaf7 = __cpuid_count(7, 0);
    let avx512bw = leaf7.ebx & (1 << 30) != 0;
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    // SAFETY: OSXSAVE is set (checked above).
    let xcr0 = unsafe { xgetbv0() };
    let tiles_os = xcr0 & (0b11 << 17) == 0b11 << 17; // XTILECFG, XTILEDATA
    if !(avx512bw && amx_bf16 && amx_tile && tiles_os) {
        return false;
    }
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: a Linux system call that only changes this process's
    // permission to use the tile state; it reads no memory of ours, and
    // `syscall` clobbers exactly rcx and r11 besides rax.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_usable() -> bool {
    false
}

/// Reads XCR0.
///
/// # Safety
/// The CPU must support XSAVE with OSXSAVE set (CPUID.1:ECX bit 27).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller guarantees XGETBV is available.
    unsafe { core::arch::x86_64::_xgetbv(0) }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Isa {
    if cfg!(target_feature = "neon") {
        Isa::Neon
    } else {
        Isa::Portable
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Isa {
    Isa::Portable
}
