//! Models compiled by `mobilenet!` for the end-to-end tests (tests/all/e2e.rs).
//! The crate denies warnings: generated code must compile cleanly.
//! Feature `all-models` (default): all of them; without it, the three the
//! aarch64 CI runs (see Cargo.toml).
#![no_std]
#![deny(warnings)]

/// Pretrained Keras MobileNet v1 0.25 224 (the README's default model).
pub mod keras_v1 {
    mncc_runtime::mobilenet!("../examples/models/mobilenet_v1_0.25_224.toml");
}

/// The same pretrained model from its ONNX export (tf2onnx: Pad nodes, Clip
/// with initializer bounds, asymmetric pads, a 1x1 conv classifier, Softmax).
#[cfg(feature = "all-models")]
pub mod keras_v1_onnx {
    mncc_runtime::mobilenet!("../examples/models/keras_mobilenet_v1_0.25_224.onnx");
}

macro_rules! models {
    ($($name:ident => $path:literal $(, $target:literal)?);* $(;)?) => {
        $(
            #[doc = concat!("Seeded model `", $path, "`", $(" compiled for `", $target, "`",)? ".")]
            pub mod $name {
                /// The description, relative to this crate.
                pub const SOURCE: &str = $path;
                mncc_runtime::mobilenet!($path $(, target = $target)?);
            }
        )*
    };
}

models! {
    v1_025_128_u8 => "models/v1_0.25_128_u8.toml";
    v2_035_96 => "models/v2_0.35_96.toml";
}

#[cfg(feature = "all-models")]
models! {
    v1_05_160_f32 => "models/v1_0.5_160_f32.toml";
    v1_075_192 => "models/v1_0.75_192.toml";
    v1_14_96 => "models/v1_1.4_96.toml";
    v2_05_128_f32 => "models/v2_0.5_128_f32.toml";
    v2_075_160 => "models/v2_0.75_160.toml";
    v2_13_192 => "models/v2_1.3_192.toml";
    // The AMX target: pointwise layers of 64 pixels and 32 channels on up
    // on the tiles where the CPU has them (AVX-512 or less elsewhere).
    v1_075_192_amx => "models/v1_0.75_192.toml", "x86-64-amx";
    v2_13_192_amx => "models/v2_1.3_192.toml", "x86-64-amx";
}
