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
/// `classify(&Input, &mut Arena) -> Output`. Options, after the path:
/// `target = "name"` picks the schedule's target as `mncc --target` does
/// (default `x86-64`); `input_shape = [1, 3, 224, 224]` fixes an ONNX
/// input's symbolic dims, as `mncc --input-shape` does; `batch = 4` makes
/// `run` take that many images, as `mncc --batch` does.
#[proc_macro]
pub fn mobilenet(input: TokenStream) -> TokenStream {
    let Args {
        lit,
        target,
        input_shape,
        batch,
    } = match syn::parse::<Args>(input) {
        Ok(a) => a,
        Err(e) => {
            let hint = "expected the path of a model description as a string literal, e.g. mobilenet!(\"models/v1_0.25_224.toml\"), optionally followed by `, target = \"x86-64-amx\"`, `, input_shape = [1, 3, 224, 224]` and `, batch = 4`";
            let msg = e.to_string();
            let msg = if msg.starts_with("unknown or repeated option") {
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
    let options = mncc::LoadOptions { input_shape, batch };
    match expand(&lit, &target, &options) {
        Ok(ts) => ts.into(),
        Err(errors) => errors
            .into_iter()
            .map(|e| syn::Error::new(lit.span(), e).to_compile_error())
            .collect::<proc_macro2::TokenStream>()
            .into(),
    }
}

/// The macro's arguments: the description's path, then optionally
/// `, target = "name"`, `, input_shape = [dims]` and `, batch = n`, in
/// any order.
struct Args {
    lit: LitStr,
    target: Option<LitStr>,
    input_shape: Option<Vec<usize>>,
    batch: Option<usize>,
}

impl syn::parse::Parse for Args {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let lit: LitStr = input.parse()?;
        let (mut target, mut input_shape, mut batch) = (None, None, None);
        while input.parse::<Option<syn::Token![,]>>()?.is_some() && !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            input.parse::<syn::Token![=]>()?;
            if key == "target" && target.is_none() {
                target = Some(input.parse()?);
            } else if key == "input_shape" && input_shape.is_none() {
                let content;
                syn::bracketed!(content in input);
                let dims = syn::punctuated::Punctuated::<syn::LitInt, syn::Token![,]>::parse_terminated(&content)?;
                input_shape = Some(
                    dims.iter()
                        .map(|d| d.base10_parse::<usize>())
                        .collect::<syn::Result<_>>()?,
                );
            } else if key == "batch" && batch.is_none() {
                batch = Some(input.parse::<syn::LitInt>()?.base10_parse::<usize>()?);
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown or repeated option `{key}`: the options are `target = \"...\"` (a name of `mncc --target`), `input_shape = [1, 3, 224, 224]` and `batch = 4`"
                    ),
                ));
            }
        }
        Ok(Args {
            lit,
            target,
            input_shape,
            batch,
        })
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

fn expand(
    lit: &LitStr,
    target: &mncc::Target,
    options: &mncc::LoadOptions,
) -> Result<proc_macro2::TokenStream, Vec<String>> {
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
    let model = mncc::load_with(&path, options).map_err(rendered)?;
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
