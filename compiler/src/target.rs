//! What the compiler assumes of the CPU the generated code will run on: the
//! register tiles of its instruction set and its cache sizes, from which
//! the schedule (`lower::schedule`) sizes the cache tiles and decides the
//! bands. The runtime picks the instruction set at run time; the target
//! fixes the tiles written into the generated code, so builds are
//! reproducible whatever the host.

use mncc_abi::RegisterTiles;

/// What the schedule rule assumes of the CPU. The runtime picks the
/// instruction set at run time; the target fixes the cache tiles written
/// into the generated code (so builds are reproducible whatever the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Name shown by `mncc inspect` and accepted by `--target`.
    pub name: &'static str,
    /// The register tiles of the instruction set the target's CPUs run
    /// (the runtime's, from `mncc_abi`).
    pub tiles: RegisterTiles,
    /// L1 data cache bytes.
    pub l1_bytes: usize,
    /// L2 cache bytes per core: a pointwise output from a quarter of this
    /// on is run in bands with the depthwise layer that reads it (see
    /// [`crate::lower::bands`]); 0 never fuses.
    pub l2_bytes: usize,
    /// Whether pointwise layers call `simd::pointwise_amx` (see
    /// [`crate::lower::schedule::use_amx`]), which runs them on the AMX-BF16 tiles where the CPU
    /// has them.
    pub amx: bool,
}

impl Target {
    /// x86-64 with AVX-512 (AVX2 and portable fallbacks chosen at run time):
    /// 16 lanes, 48 KiB L1, 2 MiB L2 (Sapphire Rapids and later Xeons),
    /// 12 x 32 pointwise tiles.
    pub const X86_64: Target = Target {
        name: "x86-64",
        tiles: RegisterTiles::AVX512,
        l1_bytes: 48 * 1024,
        l2_bytes: 2 * 1024 * 1024,
        amx: false,
    };
    /// [`Target::X86_64`] plus the AMX-BF16 tile unit (Sapphire Rapids and
    /// later Xeons, on Linux): pointwise layers chosen by [`crate::lower::schedule::use_amx`] run on
    /// the tiles at f32 accuracy (their weights split into bf16 planes at
    /// run time, in a scratch at the arena's end); on a CPU without AMX the
    /// same code runs on AVX-512 (or less).
    pub const X86_64_AMX: Target = Target {
        name: "x86-64-amx",
        amx: true,
        ..Target::X86_64
    };
    /// x86-64 with AVX2 at most: 8 lanes, 32 KiB L1, 1 MiB L2, 6 x 16 tiles.
    pub const X86_64_AVX2: Target = Target {
        name: "x86-64-avx2",
        tiles: RegisterTiles::AVX2,
        l1_bytes: 32 * 1024,
        l2_bytes: 1024 * 1024,
        amx: false,
    };
    /// aarch64 NEON: 4 lanes, 64 KiB L1, 1 MiB L2, 6 x 16 tiles.
    pub const AARCH64: Target = Target {
        name: "aarch64",
        tiles: RegisterTiles::NEON,
        l1_bytes: 64 * 1024,
        l2_bytes: 1024 * 1024,
        amx: false,
    };
    /// Anything else (Cortex-M, wasm): the portable path, 2 x 16 tiles, no
    /// banded layers (less code; a microcontroller has no cache to keep
    /// them in).
    pub const PORTABLE: Target = Target {
        name: "portable",
        tiles: RegisterTiles::PORTABLE,
        l1_bytes: 32 * 1024,
        l2_bytes: 0,
        amx: false,
    };
    /// All targets, for `--target`.
    pub const ALL: [Target; 5] = [
        Target::X86_64,
        Target::X86_64_AMX,
        Target::X86_64_AVX2,
        Target::AARCH64,
        Target::PORTABLE,
    ];

    /// The target for a Rust target triple (cargo's `TARGET` in a build
    /// script): `x86_64-*` [`Target::X86_64`], `aarch64-*`
    /// [`Target::AARCH64`], anything else (`thumbv7em-none-eabihf`,
    /// `wasm32-*`, `riscv32*`) [`Target::PORTABLE`].
    pub fn for_triple(triple: &str) -> Target {
        match triple.split('-').next().unwrap_or("") {
            "x86_64" => Target::X86_64,
            "aarch64" | "arm64" => Target::AARCH64,
            _ => Target::PORTABLE,
        }
    }

    /// The target named `name`.
    pub fn by_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name == name)
    }

    /// [`Target::by_name`], or an error listing the names.
    pub fn parse(name: &str) -> Result<Target, String> {
        Target::by_name(name).ok_or_else(|| {
            let names: Vec<&str> = Target::ALL.iter().map(|t| t.name).collect();
            format!("unknown target `{name}`: expected one of {}", names.join(", "))
        })
    }

    /// One line for reports: name, lanes, L1, L2, pointwise register tile.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} f32 lanes, {} KiB L1, {} KiB L2, pointwise tile {}x{}{})",
            self.name,
            self.tiles.lanes,
            self.l1_bytes / 1024,
            self.l2_bytes / 1024,
            self.tiles.pw_mr,
            self.tiles.pw_nr,
            if self.amx {
                "; AMX tiles 32x32 for pointwise layers"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_for_a_triple() {
        assert_eq!(Target::for_triple("x86_64-unknown-linux-gnu"), Target::X86_64);
        assert_eq!(Target::for_triple("aarch64-apple-darwin"), Target::AARCH64);
        for t in [
            "thumbv7em-none-eabihf",
            "wasm32-unknown-unknown",
            "riscv32imc-unknown-none-elf",
            "",
        ] {
            assert_eq!(Target::for_triple(t), Target::PORTABLE, "{t}");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_listed() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name), Ok(t));
        }
        let e = Target::parse("x86").unwrap_err();
        assert!(e.contains("x86-64-amx") && e.contains("portable"), "{e}");
    }
}
