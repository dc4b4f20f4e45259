//! Rust code generation with `quote!`, formatted by prettyplease.
//!
//! The output is deterministic (same program, same bytes) and depends only on
//! `::mncc_runtime`: no `std`, no `alloc`, no `unsafe`. Each layer is a
//! function whose doc comment names its source node(s), shapes, MACs, kernel,
//! tiles and why they were chosen. Weights are one little-endian `f32` blob,
//! 64-byte aligned, embedded with `include_bytes!` (a file beside the
//! generated `.rs`) or as a byte-string literal (the proc macro).

use crate::ir::{Activation, DType, Layout};
use crate::lower::{Kernel, Layer, Program, Storage};
use mncc_abi::{amx, ConvShape, DepthwiseTiles, PointwiseShape, PointwiseTiles, PwDwShape, PwOrder};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use std::ops::Range;

/// How the generated code embeds the weight blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightsEmbed {
    /// `include_bytes!("<file name>")`, relative to the generated file.
    IncludeBytes(String),
    /// A byte-string literal in the token stream (no file needed).
    Inline,
}

/// The blob as little-endian bytes.
pub fn blob_bytes(p: &Program) -> Vec<u8> {
    p.blob.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_lit(v: f32) -> TokenStream {
    if v == f32::INFINITY {
        quote!(f32::INFINITY)
    } else if v == f32::NEG_INFINITY {
        quote!(f32::NEG_INFINITY)
    } else {
        let l = Literal::f32_unsuffixed(v);
        quote!(#l)
    }
}

fn range_lit(r: &Range<usize>) -> TokenStream {
    let (a, b) = (Literal::usize_unsuffixed(r.start), Literal::usize_unsuffixed(r.end));
    quote!(#a..#b)
}

fn usize_lit(v: usize) -> Literal {
    Literal::usize_unsuffixed(v)
}

fn human(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn shape_str(s: &[usize]) -> String {
    let v: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn dtype_ty(d: DType) -> TokenStream {
    match d {
        DType::F32 => quote!(f32),
        DType::U8 => quote!(u8),
    }
}

/// Generates the module's items as tokens.
pub fn tokens(p: &Program, embed: &WeightsEmbed) -> TokenStream {
    let model_name = &p.name;
    let in_len = usize_lit(p.input_len());
    let out_len = usize_lit(p.output_len());
    let uses_arena = p.storage.iter().any(|s| matches!(s, Some(Storage::Arena(_))));
    // The planned tensors, plus the runtime's slack for `align_arena` when
    // there is an arena at all (named, not copied: the runtime owns it).
    let arena_len = {
        let planned = usize_lit(p.arena_len);
        if uses_arena {
            quote!(#planned + ::mncc_runtime::ARENA_SLACK)
        } else {
            quote!(#planned)
        }
    };
    let in_rank = usize_lit(p.input_shape.len());
    let out_rank = usize_lit(p.output_shape.len());
    let in_dims = p.input_shape.iter().map(|&d| usize_lit(d));
    let out_dims = p.output_shape.iter().map(|&d| usize_lit(d));
    let in_ty = dtype_ty(p.input_type);
    let macs = Literal::u64_unsuffixed(p.macs());
    let params = usize_lit(p.params());
    let bytes = blob_bytes(p);
    let blob_len = usize_lit(bytes.len());
    let blob = match embed {
        WeightsEmbed::IncludeBytes(file) => quote!(*include_bytes!(#file)),
        WeightsEmbed::Inline => {
            let lit = Literal::byte_string(&bytes);
            quote!(*#lit)
        }
    };
    let layout = match p.input_layout {
        Layout::Nhwc => "NHWC ([1, height, width, channels])",
        Layout::Nchw => "NCHW ([1, channels, height, width])",
    };
    let input_doc = format!(
        " The input: {} `{}` values, {layout}.{}",
        p.input_len(),
        p.input_type.rust_name(),
        if p.input_type == DType::U8 {
            " Raw pixels: the normalization is folded into the first layer."
        } else {
            ""
        }
    );
    let model_doc = format!(
        " {} ({}): {} layers, {} MACs, {} parameters.",
        p.name,
        p.description,
        p.layers.len(),
        human(p.macs()),
        human(p.params() as u64)
    );
    let arena_doc = format!(
        " Arena elements (`f32`): {} bytes of planned tensors (the largest set of live tensors needs {} elements){}.",
        p.arena_len * 4,
        p.arena_lower_bound,
        if uses_arena {
            ", plus `mncc_runtime::ARENA_SLACK` so they can start on a 64-byte boundary wherever the arena is"
        } else {
            ""
        }
    );

    // A banded pointwise layer's function also runs the depthwise layer
    // after it (`in_band`), which has no call or function of its own.
    let in_band = |i: usize| i > 0 && p.layers[i - 1].band.is_some();
    let calls: Vec<_> = p
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let f = layer_fn_name(i, l);
            if l.band.is_some() {
                let args = fused_args(p, i);
                quote!(#f(#args);)
            } else if in_band(i) {
                quote!()
            } else {
                let args = layer_args(p, l);
                quote!(#f(#args);)
            }
        })
        .collect();
    let observed = calls.iter().enumerate().map(|(i, call)| quote!(#call after(#i);));
    // `run_parallel`: the layers that split over threads (convolutions)
    // call their `_par` variant with the executor.
    let par_calls: Vec<_> = p
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if in_band(i) {
                return quote!();
            }
            let args = if l.band.is_some() {
                fused_args(p, i)
            } else {
                layer_args(p, l)
            };
            if splits(l) {
                let f = format_ident!("{}_par", layer_fn_name(i, l));
                let sep = if args.is_empty() { quote!() } else { quote!(,) };
                quote!(#f(#args #sep par);)
            } else {
                let f = layer_fn_name(i, l);
                quote!(#f(#args);)
            }
        })
        .collect();
    let par_observed = par_calls.iter().enumerate().map(|(i, call)| quote!(#call after(#i);));
    let n_layers = p.layers.len();
    // A banded pair is timed as one: its pointwise entry names both
    // kernels and counts both layers' MACs, its depthwise entry none.
    let infos = p.layers.iter().enumerate().map(|(i, l)| {
        let name = l.name.as_str();
        let (kernel, macs) = if l.band.is_some() {
            let dw = &p.layers[i + 1];
            (format!("{}+{}", l.kernel.name(), dw.kernel.name()), l.macs + dw.macs)
        } else if in_band(i) {
            (format!("(in layer {}'s bands)", i - 1), 0)
        } else {
            (l.kernel.name(), l.macs)
        };
        quote!((#name, #kernel, #macs))
    });
    let fns = p.layers.iter().enumerate().map(|(i, l)| {
        if in_band(i) {
            quote!()
        } else if l.band.is_some() {
            let (serial, par) = (fused_fn(p, i, false), fused_fn(p, i, true));
            quote!(#serial #par)
        } else {
            let serial = layer_fn(p, i, l, false);
            let par = if splits(l) { layer_fn(p, i, l, true) } else { quote!() };
            quote!(#serial #par)
        }
    });
    let uses_weights = p.layers.iter().any(|l| l.weights.is_some() || l.bias.is_some());
    // The first line of every `run*`: the arena from its first cache line
    // on; a model whose layers all read the input and write the output needs
    // no scratch: `run` keeps the same signature and ignores the (empty)
    // arena.
    let arena_prelude = if uses_arena {
        quote!(let arena = ::mncc_runtime::align_arena(arena);)
    } else {
        quote!(let _ = arena;)
    };
    let w_let = if uses_weights {
        quote!(let w = ::mncc_runtime::f32_view(&WEIGHTS);)
    } else {
        quote!()
    };

    quote! {
        #[doc = #model_doc]
        #[allow(dead_code)]
        pub const NAME: &str = #model_name;
        #[doc = " Input shape, in the caller's layout."]
        #[allow(dead_code)]
        pub const INPUT_SHAPE: [usize; #in_rank] = [#(#in_dims),*];
        #[doc = " Number of input elements."]
        #[allow(dead_code)]
        pub const INPUT_LEN: usize = #in_len;
        #[doc = #input_doc]
        #[allow(dead_code)]
        pub type Input = [#in_ty; INPUT_LEN];
        #[doc = " Output shape."]
        #[allow(dead_code)]
        pub const OUTPUT_SHAPE: [usize; #out_rank] = [#(#out_dims),*];
        #[doc = " Number of output elements."]
        #[allow(dead_code)]
        pub const OUTPUT_LEN: usize = #out_len;
        #[doc = " The output, in the order of [`OUTPUT_SHAPE`] (NCHW for a 4-D output)."]
        #[allow(dead_code)]
        pub type Output = [f32; OUTPUT_LEN];
        #[doc = #arena_doc]
        #[allow(dead_code)]
        pub const ARENA_LEN: usize = #arena_len;
        #[doc = " Scratch memory for [`run`]; put it in a `static` on targets without a heap."]
        #[allow(dead_code)]
        pub type Arena = [f32; ARENA_LEN];
        #[doc = " Multiply-accumulates per inference."]
        #[allow(dead_code)]
        pub const MACS: u64 = #macs;
        #[doc = " Weights and biases."]
        #[allow(dead_code)]
        pub const PARAMS: usize = #params;

        #[doc = " All weights, packed in the kernels' order (little-endian `f32`)."]
        static WEIGHTS: ::mncc_runtime::Aligned<[u8; #blob_len]> = ::mncc_runtime::Aligned(#blob);

        #[doc = " Runs the model: reads `input`, writes `output`, uses `arena` as scratch."]
        #[doc = " Allocates nothing; `arena` may hold anything on entry."]
        #[allow(dead_code)]
        pub fn run(input: &Input, output: &mut Output, arena: &mut Arena) {
            #w_let
            #arena_prelude
            #(#calls)*
        }

        #[doc = " Per layer: source node, kernel, multiply-accumulates (for profiling with [`run_observed`])."]
        #[allow(dead_code)]
        pub const LAYERS: [(&str, &str, u64); #n_layers] = [#(#infos),*];

        #[doc = " [`run`], calling `after(i)` when layer `i` is done (e.g. to time each layer)."]
        #[allow(dead_code)]
        pub fn run_observed(input: &Input, output: &mut Output, arena: &mut Arena, after: &mut dyn FnMut(usize)) {
            #w_let
            #arena_prelude
            #(#observed)*
        }

        #[doc = " [`run`] with each convolution split over the threads of `par` (an"]
        #[doc = " executor: `::mncc_runtime::par::StdPool` with the runtime's `std` feature,"]
        #[doc = " or your own [`Parallel`](::mncc_runtime::par::Parallel)), by output rows or"]
        #[doc = " pixels. The output is bit-identical to [`run`]'s; same arena, no allocation."]
        #[allow(dead_code)]
        pub fn run_parallel(input: &Input, output: &mut Output, arena: &mut Arena, par: &dyn ::mncc_runtime::par::Parallel) {
            #w_let
            #arena_prelude
            #(#par_calls)*
        }

        #[doc = " [`run_parallel`], calling `after(i)` on the calling thread when layer `i`"]
        #[doc = " is done (all its parts joined), e.g. to time each layer of the parallel mode."]
        #[allow(dead_code)]
        pub fn run_parallel_observed(
            input: &Input,
            output: &mut Output,
            arena: &mut Arena,
            par: &dyn ::mncc_runtime::par::Parallel,
            after: &mut dyn FnMut(usize),
        ) {
            #w_let
            #arena_prelude
            #(#par_observed)*
        }

        #[doc = " Runs the model and returns the output by value."]
        #[allow(dead_code)]
        pub fn classify(input: &Input, arena: &mut Arena) -> Output {
            let mut output = [0.0; OUTPUT_LEN];
            run(input, &mut output, arena);
            output
        }

        #(#fns)*
    }
}

/// Whether the layer's kernel has a parallel entry point (`mncc_runtime::par`).
fn splits(l: &Layer) -> bool {
    matches!(
        l.kernel,
        Kernel::Conv2d { .. } | Kernel::Depthwise { .. } | Kernel::Pointwise { .. }
    )
}

fn layer_fn_name(i: usize, l: &Layer) -> proc_macro2::Ident {
    format_ident!("layer{:02}_{}", i, snake(&l.name))
}

/// A node name as a snake_case identifier fragment: ASCII alphanumerics
/// lowercased, every other run of characters one `_` (`Conv__160` and
/// `a/b:0` must not give `conv__160` or a trailing `_`, which rustc's
/// `non_snake_case` lint rejects).
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_');
    if out.is_empty() {
        "node".into()
    } else {
        out.into()
    }
}

fn storage_of(p: &Program, t: usize) -> &Storage {
    p.storage[t]
        .as_ref()
        .expect("lowering assigns storage to every layer tensor")
}

/// The arguments of a layer function call: what it reads and writes.
fn layer_args(p: &Program, l: &Layer) -> TokenStream {
    let mut args = Vec::new();
    let mut arena = false;
    for &t in &l.inputs {
        match storage_of(p, t) {
            Storage::Input => args.push(quote!(input)),
            Storage::Arena(_) => arena = true,
            Storage::Output => args.push(quote!(output)),
        }
    }
    match storage_of(p, l.output) {
        Storage::Output => args.push(quote!(output)),
        Storage::Arena(_) => arena = true,
        Storage::Input => {}
    }
    if arena || on_amx(l) {
        args.push(quote!(arena));
    }
    if l.weights.is_some() || l.bias.is_some() {
        args.push(quote!(w));
    }
    quote!(#(#args),*)
}

fn layer_doc(i: usize, l: &Layer) -> Vec<String> {
    let mut from = vec![format!("`{}`", l.name)];
    from.extend(l.fused.iter().map(|f| format!("`{f}`")));
    let mut lines = vec![format!(" Layer {i}: {} from {}.", l.op, from.join(" + "))];
    let mut what = format!(" {} -> {}", shape_str(&l.in_shape), shape_str(&l.out_shape));
    if let Kernel::Conv2d { shape: s, .. } | Kernel::Depthwise { shape: s, .. } = &l.kernel {
        let bottom = ((s.out_h - 1) * s.stride_h + s.kernel_h).saturating_sub(s.in_h + s.pad_top);
        let right = ((s.out_w - 1) * s.stride_w + s.kernel_w).saturating_sub(s.in_w + s.pad_left);
        what = format!(
            " {}x{} stride {}, pads [top {}, left {}, bottom {bottom}, right {right}]:{what}",
            s.kernel_h, s.kernel_w, s.stride_h, s.pad_top, s.pad_left
        );
    }
    lines.push(format!(
        "{what}; {} MACs, {} params.",
        human(l.macs),
        human(l.params as u64)
    ));
    let mut epi = vec![];
    if l.bias.is_some() {
        epi.push("bias".to_string());
    }
    if l.residual {
        epi.push("residual add".to_string());
    }
    if !l.clamp.is_none() {
        epi.push(l.clamp.describe());
    }
    if l.act != Activation::None {
        epi.push(l.act.to_string());
    }
    let epi = if epi.is_empty() {
        String::new()
    } else {
        format!(", epilogue {}", epi.join(" + "))
    };
    lines.push(format!(
        " Kernel `{}`, tiles {}{epi}.",
        l.kernel.name(),
        l.kernel.tiles()
    ));
    if !l.why.is_empty() {
        lines.push(format!(" Schedule: {}.", l.why));
    }
    lines
}

fn epilogue(l: &Layer, residual: TokenStream) -> TokenStream {
    let bias = match &l.bias {
        Some(r) => {
            let r = range_lit(r);
            quote!(Some(&w[#r]))
        }
        None => quote!(None),
    };
    let (min, max) = (f32_lit(l.clamp.min), f32_lit(l.clamp.max));
    let act = activation(l.act);
    quote!(&::mncc_runtime::Epilogue { bias: #bias, min: #min, max: #max, residual: #residual, act: #act })
}

/// `::mncc_runtime::Activation::<variant>` with its fields ([`Activation::params`]).
fn activation(a: Activation) -> TokenStream {
    let name = format_ident!("{}", a.name());
    let (params, n) = a.params();
    if n == 0 {
        return quote!(::mncc_runtime::Activation::#name);
    }
    let fields = params[..n].iter().map(|&(f, v)| {
        let f = format_ident!("{f}");
        let v = f32_lit(v);
        quote!(#f: #v)
    });
    quote!(::mncc_runtime::Activation::#name { #(#fields),* })
}

// The contract's structs as literals. Each destructures its struct
// exhaustively, so a field added to `mncc_abi` fails to compile here.

fn conv_shape(s: &ConvShape) -> TokenStream {
    let ConvShape {
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_top,
        pad_left,
    } = *s;
    let [in_h, in_w, in_c, out_h, out_w, out_c, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left] = [
        in_h, in_w, in_c, out_h, out_w, out_c, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
    ]
    .map(usize_lit);
    quote!(::mncc_runtime::ConvShape {
        in_h: #in_h, in_w: #in_w, in_c: #in_c, out_h: #out_h, out_w: #out_w, out_c: #out_c,
        kernel_h: #kernel_h, kernel_w: #kernel_w, stride_h: #stride_h, stride_w: #stride_w,
        pad_top: #pad_top, pad_left: #pad_left,
    })
}

fn pointwise_shape(s: &PointwiseShape) -> TokenStream {
    let PointwiseShape { pixels, in_c, out_c } = *s;
    let [pixels, in_c, out_c] = [pixels, in_c, out_c].map(usize_lit);
    quote!(::mncc_runtime::PointwiseShape { pixels: #pixels, in_c: #in_c, out_c: #out_c })
}

fn pointwise_tiles(t: &PointwiseTiles) -> TokenStream {
    let PointwiseTiles { kc, order } = *t;
    let kc = usize_lit(kc);
    let order = match order {
        PwOrder::PixelsOuter => quote!(::mncc_runtime::PwOrder::PixelsOuter),
        PwOrder::ChannelsOuter => quote!(::mncc_runtime::PwOrder::ChannelsOuter),
    };
    quote!(::mncc_runtime::PointwiseTiles { kc: #kc, order: #order })
}

fn depthwise_tiles(t: &DepthwiseTiles) -> TokenStream {
    let DepthwiseTiles { rows } = *t;
    let rows = usize_lit(rows);
    quote!(::mncc_runtime::DepthwiseTiles { rows: #rows })
}

fn pw_dw_shape(s: &PwDwShape) -> TokenStream {
    let PwDwShape {
        pw,
        pw_tiles,
        dw,
        dw_tiles,
        band,
    } = s;
    let (pw, pw_tiles, dw, dw_tiles) = (
        pointwise_shape(pw),
        pointwise_tiles(pw_tiles),
        conv_shape(dw),
        depthwise_tiles(dw_tiles),
    );
    let band = usize_lit(*band);
    quote!(::mncc_runtime::PwDwShape { pw: #pw, pw_tiles: #pw_tiles, dw: #dw, dw_tiles: #dw_tiles, band: #band })
}

/// The function of layer `i`; with `par`, its variant `<name>_par` that
/// splits the work over an executor (the same kernel from
/// `mncc_runtime::par`).
fn layer_fn(p: &Program, i: usize, l: &Layer, par: bool) -> TokenStream {
    let serial_name = layer_fn_name(i, l);
    let (name, docs) = if par {
        let doc = format!(" [`{serial_name}`] split over the threads of `par` (same result, bit for bit).");
        (format_ident!("{serial_name}_par"), vec![doc])
    } else {
        (serial_name, layer_doc(i, l))
    };
    // The kernel call: `simd::<kernel>(...)` or `par::<kernel>(par, ...)`.
    let (module, par_arg) = if par {
        (quote!(::mncc_runtime::par), quote!(par,))
    } else {
        (quote!(::mncc_runtime::simd), quote!())
    };
    let in_ty = dtype_ty(p.input_type);

    // Parameters, and the bindings of the tensors it reads and writes.
    let mut params = Vec::new();
    let mut arena_in = Vec::new();
    let mut bind = Vec::new();
    let mut names = Vec::new();
    for (k, &t) in l.inputs.iter().enumerate() {
        let v = format_ident!("{}", if k == 0 { "x" } else { "r" });
        match storage_of(p, t) {
            Storage::Input => {
                params.push(quote!(input: &[#in_ty; INPUT_LEN]));
                bind.push(quote!(let #v: &[#in_ty] = input;));
            }
            Storage::Output => {
                params.push(quote!(output: &Output));
                bind.push(quote!(let #v: &[f32] = output;));
            }
            Storage::Arena(r) => arena_in.push((v.clone(), r.clone())),
        }
        names.push(v);
    }
    let out_arena = match storage_of(p, l.output) {
        Storage::Output => {
            params.push(quote!(output: &mut Output));
            bind.push(quote!(let y: &mut [f32] = output;));
            None
        }
        Storage::Arena(r) => Some(r.clone()),
        Storage::Input => None,
    };
    let amx = on_amx(l);
    if !arena_in.is_empty() || out_arena.is_some() || amx {
        params.push(quote!(arena: &mut [f32]));
    }
    if amx {
        bind.push(amx_split(p));
    }
    if l.weights.is_some() || l.bias.is_some() {
        params.push(quote!(w: &[f32]));
    }
    if par {
        params.push(quote!(par: &dyn ::mncc_runtime::par::Parallel));
    }
    match (arena_in.as_slice(), &out_arena) {
        ([], None) => {}
        ([], Some(o)) => {
            let o = range_lit(o);
            bind.push(quote!(let y = &mut arena[#o];));
        }
        ([(a, ra)], None) => {
            let ra = range_lit(ra);
            bind.push(quote!(let #a = &arena[#ra];));
        }
        ([(a, ra)], Some(o)) => {
            let (ra, o) = (range_lit(ra), range_lit(o));
            bind.push(quote!(let (#a, y) = ::mncc_runtime::split2(arena, #ra, #o);));
        }
        ([(a, ra), (b, rb)], Some(o)) => {
            let (ra, rb, o) = (range_lit(ra), range_lit(rb), range_lit(o));
            bind.push(quote!(let (#a, #b, y) = ::mncc_runtime::split3(arena, #ra, #rb, #o);));
        }
        ([(a, ra), (b, rb)], None) => {
            let (ra, rb) = (range_lit(ra), range_lit(rb));
            bind.push(quote!(let #a = &arena[#ra]; let #b = &arena[#rb];));
        }
        _ => unreachable!("layers read at most two tensors"),
    }
    let x = &names[0];
    let residual = if l.residual {
        let r = &names[1];
        quote!(Some(#r))
    } else {
        quote!(None)
    };
    let wr = l.weights.as_ref().map(range_lit);
    let body = match &l.kernel {
        Kernel::Conv2d {
            shape,
            input_type,
            layout,
            pad_value,
            ..
        } => {
            let s = conv_shape(shape);
            let ty = dtype_ty(*input_type);
            let lay = match layout {
                Layout::Nhwc => quote!(::mncc_runtime::Layout::Nhwc),
                Layout::Nchw => quote!(::mncc_runtime::Layout::Nchw),
            };
            let pads = pad_value.iter().map(|&v| f32_lit(v));
            let npad = usize_lit(pad_value.len());
            let ep = epilogue(l, residual);
            quote! {
                const SHAPE: ::mncc_runtime::ConvShape = #s;
                const PAD: [f32; #npad] = [#(#pads),*];
                #module::conv2d::<#ty>(#par_arg &SHAPE, #lay, #x, &PAD, &w[#wr], #ep, y);
            }
        }
        Kernel::Depthwise { shape, tiles, .. } => {
            let (s, t) = (conv_shape(shape), depthwise_tiles(tiles));
            let ep = epilogue(l, residual);
            quote! {
                const SHAPE: ::mncc_runtime::ConvShape = #s;
                const TILES: ::mncc_runtime::DepthwiseTiles = #t;
                #module::depthwise(#par_arg &SHAPE, &TILES, #x, &w[#wr], #ep, y);
            }
        }
        Kernel::Pointwise { shape, tiles, .. } => {
            let (s, t) = (pointwise_shape(shape), pointwise_tiles(tiles));
            let ep = epilogue(l, residual);
            let call = if amx {
                let amx = amx_scratch(p, par);
                quote!(#module::pointwise_amx(#par_arg &SHAPE, &TILES, #x, &w[#wr], #ep, y, #amx);)
            } else {
                quote!(#module::pointwise(#par_arg &SHAPE, &TILES, #x, &w[#wr], #ep, y);)
            };
            quote! {
                const SHAPE: ::mncc_runtime::PointwiseShape = #s;
                const TILES: ::mncc_runtime::PointwiseTiles = #t;
                #call
            }
        }
        Kernel::GlobalAvgPool { pixels, c } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::global_avg_pool(#pixels, #c, #x, y);)
        }
        Kernel::Softmax => quote!(::mncc_runtime::softmax(#x, y);),
        Kernel::Add => {
            let r = &names[1];
            let ep = epilogue(l, quote!(None));
            quote!(::mncc_runtime::add(#x, #r, #ep, y);)
        }
        Kernel::Map => {
            let ep = epilogue(l, quote!(None));
            quote!(::mncc_runtime::map(#x, #ep, y);)
        }
        Kernel::ScaleChannels { pixels, c } => {
            let r = &names[1];
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::scale_channels(#pixels, #c, #x, #r, y);)
        }
        Kernel::NhwcToNchw { pixels, c } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::nhwc_to_nchw(#pixels, #c, #x, y);)
        }
    };
    quote! {
        #(#[doc = #docs])*
        #[inline(never)]
        fn #name(#(#params),*) {
            #(#bind)*
            #body
        }
    }
}

/// Whether the layer is a pointwise one on the AMX tiles.
fn on_amx(l: &Layer) -> bool {
    matches!(&l.kernel, Kernel::Pointwise { amx: true, .. })
}

/// The statement an AMX layer's function starts with: the AMX scratch is
/// the arena's end, past the planned tensors.
fn amx_split(p: &Program) -> TokenStream {
    let at = usize_lit(p.amx_at);
    quote!(let (arena, amx) = arena.split_at_mut(#at);)
}

/// The AMX scratch argument of a call: one thread's part, or
/// `AMX_PARTS` of them in the parallel mode.
fn amx_scratch(p: &Program, par: bool) -> TokenStream {
    let len = usize_lit(p.amx_scratch * if par { amx::PARTS } else { 1 });
    quote!(&mut amx[..#len])
}

/// The arguments of a banded pair's call (layer `i`, the pointwise one,
/// and layer `i + 1`): the pointwise input, the depthwise output, the
/// arena (the scratch at least), the weights.
fn fused_args(p: &Program, i: usize) -> TokenStream {
    let (pw, dw) = (&p.layers[i], &p.layers[i + 1]);
    let mut args = Vec::new();
    if *storage_of(p, pw.inputs[0]) == Storage::Input {
        args.push(quote!(input));
    }
    if *storage_of(p, dw.output) == Storage::Output {
        args.push(quote!(output));
    }
    args.push(quote!(arena));
    args.push(quote!(w));
    quote!(#(#args),*)
}

/// The function of a banded pair (layer `i`, pointwise, and `i + 1`,
/// depthwise), named after layer `i`; with `par`, its `_par` variant.
fn fused_fn(p: &Program, i: usize, par: bool) -> TokenStream {
    let (pw, dw) = (&p.layers[i], &p.layers[i + 1]);
    let band = pw.band.expect("fused_fn is called for banded layers");
    let serial_name = layer_fn_name(i, pw);
    let (name, docs) = if par {
        let doc = format!(" [`{serial_name}`] on two threads of `par` (same result, bit for bit).");
        (format_ident!("{serial_name}_par"), vec![doc])
    } else {
        let mut docs = layer_doc(i, pw);
        docs.push(String::new());
        docs.extend(layer_doc(i + 1, dw));
        docs.push(String::new());
        docs.push(format!(
            " Layers {i} and {} run together in bands of {} output rows: layer {i}'s {} output is never stored whole, only the {} rows a band reads (scratch of {} floats per thread).",
            i + 1,
            band.shape.band,
            shape_str(&pw.out_shape),
            band.shape.scratch_rows(),
            band.shape.scratch_len()
        ));
        (serial_name, docs)
    };
    let amx = on_amx(pw);
    let module = if par {
        quote!(::mncc_runtime::par)
    } else {
        quote!(::mncc_runtime::simd)
    };
    let par_arg = if par { quote!(par,) } else { quote!() };
    let mut params = Vec::new();
    let mut bind = Vec::new();
    let range_or_empty = |t| match storage_of(p, t) {
        Storage::Arena(r) => range_lit(r),
        _ => quote!(0..0),
    };
    let x_range = range_or_empty(pw.inputs[0]);
    let y_range = range_or_empty(dw.output);
    let Storage::Arena(scratch) = storage_of(p, pw.output) else {
        unreachable!("a band's scratch is in the arena")
    };
    let scratch = range_lit(scratch);
    if *storage_of(p, pw.inputs[0]) == Storage::Input {
        params.push(quote!(input: &Input));
    }
    if *storage_of(p, dw.output) == Storage::Output {
        params.push(quote!(output: &mut Output));
    }
    params.push(quote!(arena: &mut [f32]));
    params.push(quote!(w: &[f32]));
    if par {
        params.push(quote!(par: &dyn ::mncc_runtime::par::Parallel));
    }
    let x_in = *storage_of(p, pw.inputs[0]) == Storage::Input;
    let y_out = *storage_of(p, dw.output) == Storage::Output;
    let xp = if x_in { quote!(_) } else { quote!(x) };
    let yp = if y_out { quote!(_) } else { quote!(y) };
    if amx {
        bind.push(amx_split(p));
    }
    bind.push(quote!(let (#xp, s, #yp) = ::mncc_runtime::split_scratch(arena, #x_range, #scratch, #y_range);));
    if x_in {
        bind.push(quote!(let x: &[f32] = input;));
    }
    if y_out {
        bind.push(quote!(let y: &mut [f32] = output;));
    }
    let shape = pw_dw_shape(&band.shape);
    let (pw_w, dw_w) = (pw.weights.as_ref().map(range_lit), dw.weights.as_ref().map(range_lit));
    let (pw_ep, dw_ep) = (epilogue(pw, quote!(None)), epilogue(dw, quote!(None)));
    let call = if amx {
        let amx = amx_scratch(p, par);
        quote!(#module::pointwise_depthwise_amx(#par_arg &SHAPE, &w[#pw_w], #pw_ep, &w[#dw_w], #dw_ep, x, s, #amx, y);)
    } else {
        quote!(#module::pointwise_depthwise(#par_arg &SHAPE, &w[#pw_w], #pw_ep, &w[#dw_w], #dw_ep, x, s, y);)
    };
    quote! {
        #(#[doc = #docs])*
        #[inline(never)]
        fn #name(#(#params),*) {
            #(#bind)*
            const SHAPE: ::mncc_runtime::PwDwShape = #shape;
            #call
        }
    }
}

/// The generated file: a header comment and the formatted items.
pub fn source(p: &Program, embed: &WeightsEmbed, origin: &str) -> Result<String, String> {
    let ts = tokens(p, embed);
    let file: syn::File = syn::parse2(ts).map_err(|e| format!("internal error: generated code does not parse: {e}"))?;
    let body = prettyplease::unparse(&file);
    let header = format!(
        "// @generated by mncc {} from {origin}. Do not edit.\n// {} ({}).\n// Depends only on the `mncc-runtime` crate: no std, no alloc, no unsafe.\n\n",
        env!("CARGO_PKG_VERSION"),
        p.name,
        p.description
    );
    Ok(header + &body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn snake_names() {
        assert_eq!(super::snake("Conv__160"), "conv_160");
        assert_eq!(
            super::snake("mobilenet_0.25_224/conv1/Conv2D"),
            "mobilenet_0_25_224_conv1_conv2d"
        );
        assert_eq!(super::snake("/features/features.1/Add:0_"), "features_features_1_add_0");
        assert_eq!(super::snake("__"), "node");
    }
}
