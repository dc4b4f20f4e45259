//! `mobilenet!("model.toml")`: compiles a MobileNet description at build time
//! into items (constants, `run`, `classify`) in the calling module.
//!
//! A thin shim over the `mncc` compiler library: parse the path literal,
//! compile, expand. The path is relative to the calling crate's
//! `CARGO_MANIFEST_DIR`. Every problem is reported as a compile error spanned
//! on the path literal. The weights are embedded as a byte-string literal, and
//! the description (and weights file) are tracked with `include_bytes!` so
//! editing them rebuilds the crate.
//!
//! Use it through `mncc-runtime` (feature `macros`):
//!
//! ```ignore
//! mod model {
//!     mncc_runtime::mobilenet!("models/v1_0.25_128.toml");
//! }
//! mod fast {
//!     // The schedule of another target (`mncc --target`'s names): here the
//!     // AMX tiles for the pointwise layers where the CPU has them.
//!     mncc_runtime::mobilenet!("models/v1_1.0_224.toml", target = "x86-64-amx");
//! }
//! ```

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use std::path::{Path, PathBuf};
use syn::LitStr;

/// Compiles the MobileNet described by the TOML file at the given path
/// (relative to the crate root) into items: `INPUT_SHAPE`, `INPUT_LEN`,
/// `Input`, `OUTPUT_SHAPE`, `OUTPUT_LEN`, `Output`, `ARENA_LEN`, `Arena`,
/// `MACS`, `PARAMS`, `run(&Input, &mut Output, &mut Arena)` and
/// `classify(&Input, &mut Arena) -> Output`. An optional `target =
/// "name"` picks the schedule's target as `mncc --target` does (default
/// `x86-64`).
#[proc_macro]
pub fn mobilenet(input: TokenStream) -> TokenStream {
    let Args { lit, target } = match syn::parse::<Args>(input) {
        Ok(a) => a,
        Err(e) => {
            let hint = "expected the path of a model description as a string literal, e.g. mobilenet!(\"models/v1_0.25_224.toml\"), optionally followed by `, target = \"x86-64-amx\"`";
            let msg = e.to_string();
            let msg = if msg.starts_with("unknown option") {
                msg.as_str()
            } else {
                hint
            };
            return syn::Error::new(e.span(), msg).to_compile_error().into();
        }
    };
    let target = match &target {
        None => mncc::Target::X86_64,
        Some(t) => match mncc::Target::parse(&t.value()) {
            Ok(t) => t,
            Err(e) => return syn::Error::new(t.span(), e).to_compile_error().into(),
        },
    };
    match expand(&lit, &target) {
        Ok(ts) => ts.into(),
        Err(errors) => errors
            .into_iter()
            .map(|e| syn::Error::new(lit.span(), e).to_compile_error())
            .collect::<proc_macro2::TokenStream>()
            .into(),
    }
}

/// The macro's arguments: the description's path, then optionally
/// `, target = "name"`.
struct Args {
    lit: LitStr,
    target: Option<LitStr>,
}

impl syn::parse::Parse for Args {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let lit: LitStr = input.parse()?;
        let mut target = None;
        if input.parse::<Option<syn::Token![,]>>()?.is_some() && !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            if key != "target" {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown option `{key}`: the only option is `target = \"...\"` (a name of `mncc --target`)"
                    ),
                ));
            }
            input.parse::<syn::Token![=]>()?;
            target = Some(input.parse()?);
            let _ = input.parse::<Option<syn::Token![,]>>()?;
        }
        Ok(Args { lit, target })
    }
}

fn resolve(rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) => PathBuf::from(dir).join(p),
        None => p.to_path_buf(),
    }
}

fn expand(lit: &LitStr, target: &mncc::Target) -> Result<proc_macro2::TokenStream, Vec<String>> {
    let rel = lit.value();
    if rel.is_empty() {
        return Err(vec![
            "expected the path of a model description, e.g. mobilenet!(\"models/v1_0.25_224.toml\")".into(),
        ]);
    }
    let path = resolve(&rel);
    if !path.is_file() {
        return Err(vec![format!(
            "model description `{rel}` not found (looked for {})",
            path.display()
        )]);
    }
    let rendered = |e: mncc::Error| e.0.iter().map(ToString::to_string).collect::<Vec<_>>();
    let model = mncc::load(&path).map_err(rendered)?;
    let program = mncc::compile_for(&model, target).map_err(rendered)?;
    let items = mncc::codegen::tokens(&program, &mncc::codegen::WeightsEmbed::Inline);
    let tracked: Vec<String> = model.files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    let tracked = tracked.iter().map(|t| LitStr::new(t, Span::call_site()));
    Ok(quote! {
        // Rebuild when the description or its weights change.
        #(const _: &[u8] = include_bytes!(#tracked);)*
        #items
    })
}
