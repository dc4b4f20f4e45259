//! Rust code generation with `quote!`, formatted by prettyplease.
//!
//! The output is deterministic (same program, same bytes) and depends only on
//! `::mncc_runtime`: no `std`, no `alloc`, no `unsafe`. Each step of the
//! program (a layer, or a banded pair) is a function whose doc comment
//! describes its layers ([`crate::lower::describe`]). Weights are one
//! little-endian byte blob, each segment in its kernel's element type on a
//! 64-byte boundary, embedded with `include_bytes!` (a file beside the
//! generated `.rs`) or as a byte-string literal (the proc macro), and read
//! through `mncc_runtime::Blob`; the arena is the caller's bytes, borrowed
//! as typed tensors through `mncc_runtime::ArenaMut`.

use crate::ir::{Activation, ElemType, Layout};
use crate::lower::describe::{human, shape_str, Description};
use crate::lower::{Kernel, Layer, Program, QConvKind, Step, Storage};
use mncc_abi::{
    amx, Conv2d, ConvShape, Depthwise, DepthwiseTiles, Pointwise, PointwiseShape, PointwiseTiles, PwDwShape, PwOrder,
};
use proc_macro2::{Ident, Literal, TokenStream};
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

/// The weight blob's bytes.
pub fn blob_bytes(p: &Program) -> &[u8] {
    &p.blob
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

/// The Rust type of an element type's values.
fn elem_ty(e: ElemType) -> TokenStream {
    let t = format_ident!("{}", e.rust_name());
    quote!(#t)
}

/// Zero in an element type.
fn zero(e: ElemType) -> TokenStream {
    match e {
        ElemType::F32 => quote!(0.0),
        _ => quote!(0),
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
    let in_ty = elem_ty(p.input_type);
    let out_ty = elem_ty(p.output_type);
    let out_zero = zero(p.output_type);
    let macs = Literal::u64_unsuffixed(p.macs());
    let params = usize_lit(p.params());
    let blob_len = usize_lit(p.blob.len());
    let blob = match embed {
        WeightsEmbed::IncludeBytes(file) => quote!(*include_bytes!(#file)),
        WeightsEmbed::Inline => {
            let lit = Literal::byte_string(&p.blob);
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
        match p.input_type {
            ElemType::U8 => " Raw pixels: the normalization is folded into the first layer.",
            ElemType::F16 => {
                " Float16 values as their IEEE binary16 bits (`mncc_runtime::f32_to_f16` makes them); the layers compute in float32."
            }
            _ => "",
        }
    );
    let output_doc = format!(
        " The output: {} `{}` values{}, in the order of [`OUTPUT_SHAPE`]{}.",
        p.output_len(),
        p.output_type.rust_name(),
        if p.output_type == ElemType::F16 {
            " (float16 bits: `mncc_runtime::f16_to_f32` reads them)"
        } else {
            ""
        },
        match (p.output_shape.len(), p.output_layout) {
            (4, Layout::Nhwc) => " (NHWC: [1, height, width, channels])",
            (4, Layout::Nchw) => " (NCHW: [1, channels, height, width])",
            _ => "",
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
        " Arena bytes: {} of planned tensors (the largest set of live tensors needs {}){}.",
        p.arena_len,
        p.arena_lower_bound,
        if uses_arena {
            ", plus `mncc_runtime::ARENA_SLACK` so they can start on a 64-byte boundary wherever the arena is"
        } else {
            ""
        }
    );

    // Each `run*` body computes one image: a batch repeats it per image
    // (one arena, reused), on the image's part of the input and output.
    let batch = usize_lit(p.batch);
    let image_in_len = usize_lit(p.input_len() / p.batch.max(1));
    let image_out_len = usize_lit(p.output_len() / p.batch.max(1));
    let per_image = |body: TokenStream| {
        if p.batch > 1 {
            quote! {
                for (input, output) in input.chunks_exact(IMAGE_INPUT_LEN).zip(output.chunks_exact_mut(IMAGE_OUTPUT_LEN)) {
                    if let (Ok(input), Ok(output)) = (<&ImageInput>::try_from(input), <&mut ImageOutput>::try_from(output)) {
                        #body
                    }
                }
            }
        } else {
            body
        }
    };
    let image_items = if p.batch > 1 {
        quote! {
            #[doc = " Number of input elements of one image."]
            #[allow(dead_code)]
            pub const IMAGE_INPUT_LEN: usize = #image_in_len;
            #[doc = " One image's input."]
            #[allow(dead_code)]
            pub type ImageInput = [#in_ty; IMAGE_INPUT_LEN];
            #[doc = " Number of output elements of one image."]
            #[allow(dead_code)]
            pub const IMAGE_OUTPUT_LEN: usize = #image_out_len;
            #[doc = " One image's output."]
            #[allow(dead_code)]
            pub type ImageOutput = [#out_ty; IMAGE_OUTPUT_LEN];
        }
    } else {
        quote!()
    };
    let calls: Vec<TokenStream> = p.steps.iter().map(|s| step_call(p, s, false)).collect();
    let observed = p.steps.iter().zip(&calls).map(|(s, call)| {
        let done = s.layers();
        quote!(#call #(after(#done);)*)
    });
    // `run_parallel`: the steps that split over threads call their `_par`
    // variant with the executor.
    let par_calls: Vec<TokenStream> = p.steps.iter().map(|s| step_call(p, s, true)).collect();
    let par_observed = p.steps.iter().zip(&par_calls).map(|(s, call)| {
        let done = s.layers();
        quote!(#call #(after(#done);)*)
    });
    let n_layers = p.layers.len();
    // A banded pair is timed as one: its pointwise entry names both
    // kernels and counts both layers' MACs, its depthwise entry none.
    let infos = p.layers.iter().enumerate().map(|(i, l)| {
        let name = l.name.as_str();
        let (kernel, macs) = match p.band_of(i) {
            Some(&Step::Banded {
                pointwise, depthwise, ..
            }) if pointwise == i => {
                let dw = &p.layers[depthwise];
                (format!("{}+{}", l.kernel.name(), dw.kernel.name()), l.macs + dw.macs)
            }
            Some(&Step::Banded { pointwise, .. }) => (format!("(in layer {pointwise}'s bands)"), 0),
            _ => (l.kernel.name(), l.macs),
        };
        quote!((#name, #kernel, #macs))
    });
    let fns = p.steps.iter().map(|s| {
        let serial = step_fn(p, s, false);
        let par = if step_splits(p, s) {
            step_fn(p, s, true)
        } else {
            quote!()
        };
        quote!(#serial #par)
    });
    let uses_weights = p.layers.iter().any(|l| l.weights.is_some() || l.bias.is_some());
    // The first line of every `run*`: the arena from its first cache line
    // on; a model whose layers all read the input and write the output needs
    // no scratch: `run` keeps the same signature and ignores the (empty)
    // arena.
    let arena_prelude = if uses_arena || p.amx_scratch > 0 {
        quote!(let mut arena = ::mncc_runtime::align_arena(arena);)
    } else {
        quote!(let _ = arena;)
    };
    // No step splits (e.g. only integer layers, serial for now): `par` is unused.
    let par_prelude = if p.steps.iter().any(|s| step_splits(p, s)) {
        quote!()
    } else {
        quote!(let _ = par;)
    };
    // A model without weights (e.g. integer tables and pooling only) has
    // no blob: an unused static would warn.
    let (w_let, w_static) = if uses_weights {
        (
            quote!(let w = ::mncc_runtime::Blob::new(&WEIGHTS);),
            quote! {
                #[doc = " All weights, each layer's packed in its kernel's order and element type (little-endian)."]
                static WEIGHTS: ::mncc_runtime::Aligned<[u8; #blob_len]> = ::mncc_runtime::Aligned(#blob);
            },
        )
    } else {
        (quote!(), quote!())
    };

    let run_body = per_image(quote!(#arena_prelude #(#calls)*));
    let observed_body = per_image(quote!(#arena_prelude #(#observed)*));
    let par_body = per_image(quote!(#arena_prelude #(#par_calls)*));
    let par_observed_body = per_image(quote!(#arena_prelude #(#par_observed)*));

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
        #[doc = #output_doc]
        #[allow(dead_code)]
        pub type Output = [#out_ty; OUTPUT_LEN];
        #[doc = #arena_doc]
        #[allow(dead_code)]
        pub const ARENA_LEN: usize = #arena_len;
        #[doc = " Scratch memory for [`run`]: bytes, any alignment, any contents; put it in a"]
        #[doc = " `static` on targets without a heap."]
        #[allow(dead_code)]
        pub type Arena = [u8; ARENA_LEN];
        #[doc = " Images per run: [`run`] computes them one after another."]
        #[allow(dead_code)]
        pub const BATCH: usize = #batch;
        #image_items
        #[doc = " Multiply-accumulates per image."]
        #[allow(dead_code)]
        pub const MACS: u64 = #macs;
        #[doc = " Weights and biases."]
        #[allow(dead_code)]
        pub const PARAMS: usize = #params;

        #w_static

        #[doc = " Runs the model: reads `input`, writes `output`, uses `arena` as scratch."]
        #[doc = " Allocates nothing; `arena` may hold anything on entry."]
        #[allow(dead_code)]
        pub fn run(input: &Input, output: &mut Output, arena: &mut Arena) {
            #w_let
            #run_body
        }

        #[doc = " Per layer: source node, kernel, multiply-accumulates (for profiling with [`run_observed`])."]
        #[allow(dead_code)]
        pub const LAYERS: [(&str, &str, u64); #n_layers] = [#(#infos),*];

        #[doc = " [`run`], calling `after(i)` when layer `i` is done (e.g. to time each layer)."]
        #[allow(dead_code)]
        pub fn run_observed(input: &Input, output: &mut Output, arena: &mut Arena, after: &mut dyn FnMut(usize)) {
            #w_let
            #observed_body
        }

        #[doc = " [`run`] with each convolution split over the threads of `par` (an"]
        #[doc = " executor: `::mncc_runtime::par::StdPool` with the runtime's `std` feature,"]
        #[doc = " or your own [`Parallel`](::mncc_runtime::par::Parallel)), by output rows or"]
        #[doc = " pixels. The output is bit-identical to [`run`]'s; same arena, no allocation."]
        #[allow(dead_code)]
        pub fn run_parallel(input: &Input, output: &mut Output, arena: &mut Arena, par: &dyn ::mncc_runtime::par::Parallel) {
            #w_let
            #par_prelude
            #par_body
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
            #par_prelude
            #par_observed_body
        }

        #[doc = " Runs the model and returns the output by value."]
        #[allow(dead_code)]
        pub fn classify(input: &Input, arena: &mut Arena) -> Output {
            let mut output = [#out_zero; OUTPUT_LEN];
            run(input, &mut output, arena);
            output
        }

        #(#fns)*
    }
}

/// Whether a step has a parallel variant (`mncc_runtime::par`): the
/// convolutions and banded pairs.
fn step_splits(p: &Program, s: &Step) -> bool {
    match *s {
        Step::Banded { .. } => true,
        Step::Layer(i) => matches!(
            p.layers[i].kernel,
            Kernel::Conv2d { .. } | Kernel::Depthwise { .. } | Kernel::Pointwise { .. }
        ),
    }
}

/// The function name of a step (its first layer's), `_par` for the
/// parallel variant.
fn step_fn_name(p: &Program, s: &Step, par: bool) -> Ident {
    let i = s.first();
    let name = format_ident!("layer{:02}_{}", i, snake(&p.layers[i].name));
    if par {
        format_ident!("{name}_par")
    } else {
        name
    }
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

/// The tensors a step reads (its first layer's inputs) and writes (its
/// last layer's output).
fn step_io(p: &Program, s: &Step) -> (Vec<usize>, usize) {
    match *s {
        Step::Layer(i) => (p.layers[i].inputs.clone(), p.layers[i].output),
        Step::Banded {
            pointwise, depthwise, ..
        } => (vec![p.layers[pointwise].inputs[0]], p.layers[depthwise].output),
    }
}

/// Whether a step's function needs the arena: a tensor in it, or the AMX
/// scratch (a banded pair's scratch is always in it).
fn step_uses_arena(p: &Program, s: &Step) -> bool {
    let (ins, out) = step_io(p, s);
    matches!(s, Step::Banded { .. })
        || ins
            .iter()
            .chain([&out])
            .any(|&t| matches!(storage_of(p, t), Storage::Arena(_)))
        || on_amx(&p.layers[s.first()])
}

/// Whether a step's function reads weights.
fn step_uses_weights(p: &Program, s: &Step) -> bool {
    s.layers()
        .any(|i| p.layers[i].weights.is_some() || p.layers[i].bias.is_some())
}

/// The call of a step's function in `run` (or, with `par`, in
/// `run_parallel`).
fn step_call(p: &Program, s: &Step, par: bool) -> TokenStream {
    let par = par && step_splits(p, s);
    let f = step_fn_name(p, s, par);
    let (ins, out) = step_io(p, s);
    let mut args = Vec::new();
    for &t in &ins {
        match storage_of(p, t) {
            Storage::Input => args.push(quote!(input)),
            Storage::Output => args.push(quote!(output)),
            Storage::Arena(_) => {}
        }
    }
    if *storage_of(p, out) == Storage::Output {
        args.push(quote!(output));
    }
    if step_uses_arena(p, s) {
        args.push(quote!(&mut arena));
    }
    if step_uses_weights(p, s) {
        args.push(quote!(w));
    }
    if par {
        args.push(quote!(par));
    }
    quote!(#f(#(#args),*);)
}

/// The function of a step; with `par`, its `_par` variant that splits the
/// work over an executor (the same kernels from `mncc_runtime::par`).
fn step_fn(p: &Program, s: &Step, par: bool) -> TokenStream {
    let name = step_fn_name(p, s, par);
    let docs: Vec<String> = if par {
        vec![format!(
            " [`{}`] split over the threads of `par` (same result, bit for bit).",
            step_fn_name(p, s, false)
        )]
    } else {
        step_docs(p, s)
    };
    let (ins, out) = step_io(p, s);
    // A step computes one image: of a batch, the image's part.
    let (image_in, image_out) = if p.batch > 1 {
        (quote!(ImageInput), quote!(ImageOutput))
    } else {
        (quote!(Input), quote!(Output))
    };
    let mut params = Vec::new();
    let mut bind = Vec::new();
    let mut arena_in = Vec::new();
    let names: Vec<Ident> = (0..ins.len())
        .map(|k| format_ident!("{}", if k == 0 { "x" } else { "r" }))
        .collect();
    for (k, &t) in ins.iter().enumerate() {
        let (v, ty) = (&names[k], elem_ty(p.tensor_types[t]));
        match storage_of(p, t) {
            Storage::Input => {
                params.push(quote!(input: &#image_in));
                bind.push(quote!(let #v: &[#ty] = input;));
            }
            Storage::Output => {
                params.push(quote!(output: &#image_out));
                bind.push(quote!(let #v: &[#ty] = output;));
            }
            Storage::Arena(r) => arena_in.push((v.clone(), ty, r.clone())),
        }
    }
    let out_ty = elem_ty(p.tensor_types[out]);
    let out_arena = match storage_of(p, out) {
        Storage::Output => {
            params.push(quote!(output: &mut #image_out));
            bind.push(quote!(let y: &mut [#out_ty] = output;));
            None
        }
        Storage::Arena(r) => Some(r.clone()),
        Storage::Input => None,
    };
    if step_uses_arena(p, s) {
        params.push(quote!(arena: &mut ::mncc_runtime::ArenaMut<'_>));
    }
    if step_uses_weights(p, s) {
        params.push(quote!(w: ::mncc_runtime::Blob<'_>));
    }
    if par {
        params.push(quote!(par: &dyn ::mncc_runtime::par::Parallel));
    }
    let first = &p.layers[s.first()];
    if on_amx(first) {
        // The AMX scratch is the arena's end, past the planned tensors; the
        // rest keeps the name `arena` (mutable where a tensor is written).
        let at = usize_lit(p.amx_at);
        let rest = match (s, &out_arena, arena_in.is_empty()) {
            (Step::Banded { .. }, _, _) | (_, Some(_), _) => quote!(mut arena),
            (_, None, false) => quote!(arena),
            (_, None, true) => quote!(_),
        };
        bind.push(quote!(let (#rest, mut amx) = arena.split_at(#at);));
    }
    let body = match *s {
        Step::Layer(_) => {
            bind.push(arena_binds(&arena_in, out_arena.as_ref(), &out_ty));
            layer_call(p, first, &names, par)
        }
        Step::Banded {
            pointwise,
            depthwise,
            shape,
        } => {
            let Storage::Arena(scratch) = storage_of(p, p.layers[pointwise].output) else {
                unreachable!("a band's scratch is in the arena")
            };
            let range_or_empty = |r: Option<&Range<usize>>| r.map_or(quote!(0..0), range_lit);
            let x_range = range_or_empty(arena_in.first().map(|(_, _, r)| r));
            let y_range = range_or_empty(out_arena.as_ref());
            let xp = if arena_in.is_empty() { quote!(_) } else { quote!(x) };
            let yp = if out_arena.is_some() { quote!(y) } else { quote!(_) };
            let scratch = range_lit(scratch);
            // Pushed before the caller's input/output bindings above take effect.
            bind.insert(
                0,
                quote!(let (#xp, s, #yp): (&[f32], &mut [f32], &mut [f32]) = arena.split_scratch(#x_range, #scratch, #y_range);),
            );
            if on_amx(first) {
                // The AMX split comes first: it shadows `arena`.
                let amx_split = bind.pop().expect("pushed above");
                bind.insert(0, amx_split);
            }
            banded_call(p, &p.layers[pointwise], &p.layers[depthwise], &shape, par)
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

/// The doc comment of a step: its layers' descriptions, and for a banded
/// pair what the bands do.
fn step_docs(p: &Program, s: &Step) -> Vec<String> {
    match *s {
        Step::Layer(i) => Description::of(p, i).doc_lines(),
        Step::Banded {
            pointwise,
            depthwise,
            shape,
        } => {
            let mut docs = Description::of(p, pointwise).doc_lines();
            docs.push(String::new());
            docs.extend(Description::of(p, depthwise).doc_lines());
            docs.push(String::new());
            docs.push(format!(
                " Layers {pointwise} and {depthwise} run together in bands of {} output rows: layer {pointwise}'s {} output is never stored whole, only the {} rows a band reads (scratch of {} floats per thread).",
                shape.band,
                shape_str(&p.layers[pointwise].out_shape),
                shape.scratch_rows(),
                shape.scratch_len()
            ));
            docs
        }
    }
}

/// The statements that borrow a layer's arena tensors: `inputs` (name,
/// type, bytes) shared, the output (`out`, of type `out_ty`) exclusively.
fn arena_binds(
    inputs: &[(Ident, TokenStream, Range<usize>)],
    out: Option<&Range<usize>>,
    out_ty: &TokenStream,
) -> TokenStream {
    match (inputs, out) {
        ([], None) => quote!(),
        ([], Some(o)) => {
            let o = range_lit(o);
            quote!(let y: &mut [#out_ty] = arena.get_mut(#o);)
        }
        ([(a, ta, ra)], None) => {
            let ra = range_lit(ra);
            quote!(let #a: &[#ta] = arena.get(#ra);)
        }
        ([(a, ta, ra)], Some(o)) => {
            let (ra, o) = (range_lit(ra), range_lit(o));
            quote!(let (#a, y): (&[#ta], &mut [#out_ty]) = arena.split2(#ra, #o);)
        }
        ([(a, ta, ra), (b, tb, rb)], Some(o)) => {
            let (ra, rb, o) = (range_lit(ra), range_lit(rb), range_lit(o));
            quote!(let (#a, #b, y): (&[#ta], &[#tb], &mut [#out_ty]) = arena.split3(#ra, #rb, #o);)
        }
        ([(a, ta, ra), (b, tb, rb)], None) => {
            let (ra, rb) = (range_lit(ra), range_lit(rb));
            quote!(let #a: &[#ta] = arena.get(#ra); let #b: &[#tb] = arena.get(#rb);)
        }
        _ => unreachable!("layers read at most two tensors"),
    }
}

/// The kernel call of a layer (its tensors bound as `names` and `y`).
fn layer_call(p: &Program, l: &Layer, names: &[Ident], par: bool) -> TokenStream {
    // `simd::<kernel>(...)` or `par::<kernel>(par, ...)`.
    let (module, par_arg) = if par {
        (quote!(::mncc_runtime::par), quote!(par,))
    } else {
        (quote!(::mncc_runtime::simd), quote!())
    };
    let x = &names[0];
    let residual = if l.residual {
        let r = &names[1];
        quote!(Some(#r))
    } else {
        quote!(None)
    };
    let wr = l.weights.as_ref().map(range_lit);
    match &l.kernel {
        Kernel::Conv2d {
            shape,
            input_type,
            layout,
            pad_value,
            ..
        } => {
            let conv = conv2d_layer(&Conv2d {
                shape: *shape,
                layout: *layout,
                pad_value,
            });
            let ty = elem_ty(*input_type);
            let ep = epilogue(l, residual);
            quote! {
                const CONV: ::mncc_runtime::Conv2d = #conv;
                #module::conv2d::<#ty>(#par_arg &CONV, #x, w.get::<f32>(#wr), #ep, y);
            }
        }
        Kernel::Depthwise { shape, tiles, .. } => {
            let dw = depthwise_layer(&Depthwise {
                shape: *shape,
                tiles: *tiles,
            });
            let ep = epilogue(l, residual);
            quote! {
                const DW: ::mncc_runtime::Depthwise = #dw;
                #module::depthwise(#par_arg &DW, #x, w.get::<f32>(#wr), #ep, y);
            }
        }
        Kernel::Pointwise { shape, tiles, amx, .. } => {
            let pw = pointwise_layer(&Pointwise {
                shape: *shape,
                tiles: *tiles,
            });
            let ep = epilogue(l, residual);
            let amx = if *amx { amx_scratch(p, par) } else { quote!(None) };
            quote! {
                const PW: ::mncc_runtime::Pointwise = #pw;
                #module::pointwise(#par_arg &PW, #x, w.get::<f32>(#wr), #ep, y, #amx);
            }
        }
        Kernel::GlobalAvgPool { pixels, c } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::global_avg_pool(#pixels, #c, #x, y);)
        }
        Kernel::Softmax => quote!(::mncc_runtime::softmax(#x, y);),
        Kernel::MaxPool(s) => {
            let shape = conv_shape(s);
            quote! {
                const SHAPE: ::mncc_runtime::ConvShape = #shape;
                ::mncc_runtime::max_pool(&SHAPE, #x, y);
            }
        }
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
        Kernel::Sigmoid => quote!(::mncc_runtime::sigmoid(#x, y);),
        Kernel::NchwToNhwc { pixels, c } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::nchw_to_nhwc(#pixels, #c, #x, y);)
        }
        Kernel::FromF16 { pixels, c, nchw } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::from_f16(#pixels, #c, #nchw, #x, y);)
        }
        Kernel::ToF16 { pixels, c, nchw } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::to_f16(#pixels, #c, #nchw, #x, y);)
        }
        Kernel::NhwcToNchw { pixels, c } => {
            let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
            quote!(::mncc_runtime::nhwc_to_nchw(#pixels, #c, #x, y);)
        }
        Kernel::Quantize {
            elem,
            scale,
            zero_point,
            nchw,
        } => {
            let (ty, scale, zp) = (elem_ty(*elem), f32_lit(*scale), Literal::i32_unsuffixed(*zero_point));
            match nchw {
                None => quote!(::mncc_runtime::quantize::<#ty>(#x, #scale, #zp, y);),
                Some((pixels, c)) => {
                    let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
                    quote!(::mncc_runtime::quantize_nchw::<#ty>(#pixels, #c, #x, #scale, #zp, y);)
                }
            }
        }
        Kernel::QConv { kind, zp } => {
            let ints = l.int.as_ref().expect("an integer layer has its constants");
            let (zr, br, mr) = (
                range_lit(&ints.zero_point),
                range_lit(&ints.bias),
                range_lit(&ints.multiplier),
            );
            let (zx, zy) = (Literal::i32_unsuffixed(zp.x), Literal::i32_unsuffixed(zp.y));
            let (kernel, shape, shape_ty) = qconv_kernel(kind);
            let kernel = format_ident!("q{kernel}");
            quote! {
                const SHAPE: #shape_ty = #shape;
                const ZP: ::mncc_runtime::abi::quant::QZeroPoints = ::mncc_runtime::abi::quant::QZeroPoints { x: #zx, y: #zy };
                let weights = ::mncc_runtime::quant::QWeights {
                    values: w.get::<i8>(#wr),
                    zero_point: w.get::<i32>(#zr),
                    bias: w.get::<i32>(#br),
                    multiplier: w.get::<f32>(#mr),
                };
                ::mncc_runtime::quant::#kernel(&SHAPE, #x, weights, ZP, y);
            }
        }
        Kernel::DynQuantize { nchw } => match nchw {
            None => quote!(::mncc_runtime::dynq::quantize(#x, y);),
            Some((pixels, c)) => {
                let (pixels, c) = (usize_lit(*pixels), usize_lit(*c));
                quote!(::mncc_runtime::dynq::quantize_nchw(#pixels, #c, #x, y);)
            }
        },
        Kernel::DynQ { kind } => {
            let ints = l.int.as_ref().expect("an integer layer has its constants");
            let (zr, cr, sr) = (
                range_lit(&ints.zero_point),
                range_lit(&ints.bias),
                range_lit(&ints.multiplier),
            );
            let bias = bias_arg(l);
            let (min, max) = (f32_lit(l.clamp.min), f32_lit(l.clamp.max));
            let (kernel, shape, shape_ty) = qconv_kernel(kind);
            let kernel = format_ident!("{kernel}");
            quote! {
                const SHAPE: #shape_ty = #shape;
                let weights = ::mncc_runtime::dynq::DynWeights {
                    values: w.get::<i8>(#wr),
                    zero_point: w.get::<i32>(#zr),
                    correction: w.get::<i32>(#cr),
                    scale: w.get::<f32>(#sr),
                    bias: #bias,
                    min: #min,
                    max: #max,
                };
                ::mncc_runtime::dynq::#kernel(&SHAPE, #x, &weights, y);
            }
        }
        Kernel::QAdd { params: q, constant } => {
            let (ra, rb, fixed) = (f32_lit(q.ra), f32_lit(q.rb), f32_lit(q.fixed));
            let b = match (&l.weights, constant) {
                (Some(r), Some(t)) => {
                    let ty = elem_ty(*t);
                    let r = range_lit(r);
                    quote!(w.get::<#ty>(#r))
                }
                _ => {
                    let r = &names[1];
                    quote!(#r)
                }
            };
            quote! {
                const ADD: ::mncc_runtime::abi::quant::QAdd = ::mncc_runtime::abi::quant::QAdd { ra: #ra, rb: #rb, fixed: #fixed };
                ::mncc_runtime::quant::qadd(#x, #b, &ADD, y);
            }
        }
        Kernel::QGlobalAvgPool(q) => {
            let (pixels, c) = (usize_lit(q.pixels), usize_lit(q.c));
            let (zx, m, zy) = (
                Literal::i32_unsuffixed(q.x_zero_point),
                f32_lit(q.multiplier),
                Literal::i32_unsuffixed(q.y_zero_point),
            );
            quote! {
                const POOL: ::mncc_runtime::abi::quant::QAvgPool = ::mncc_runtime::abi::quant::QAvgPool {
                    pixels: #pixels, c: #c, x_zero_point: #zx, multiplier: #m, y_zero_point: #zy,
                };
                ::mncc_runtime::quant::qglobal_avg_pool(&POOL, #x, y);
            }
        }
        Kernel::QMul(q) => {
            let r = &names[1];
            let (ratio, za, zb, zc) = (
                f32_lit(q.ratio),
                Literal::i32_unsuffixed(q.a_zero_point),
                Literal::i32_unsuffixed(q.b_zero_point),
                Literal::i32_unsuffixed(q.c_zero_point),
            );
            quote! {
                const MUL: ::mncc_runtime::abi::quant::QMul = ::mncc_runtime::abi::quant::QMul {
                    ratio: #ratio, a_zero_point: #za, b_zero_point: #zb, c_zero_point: #zc,
                };
                ::mncc_runtime::quant::qmul(#x, #r, &MUL, y);
            }
        }
        Kernel::QTable(t) => {
            let ty = elem_ty(p.tensor_types[l.output]);
            let values = t.iter().map(|&v| Literal::i32_unsuffixed(v));
            quote! {
                const TABLE: [#ty; 256] = [#(#values),*];
                ::mncc_runtime::quant::qtable(#x, &TABLE, y);
            }
        }
        Kernel::QSoftmax(q) => {
            let (d, f, zp) = (
                usize_lit(q.d),
                f32_lit(q.y_factor),
                Literal::i32_unsuffixed(q.y_zero_point),
            );
            quote! {
                const SOFTMAX: ::mncc_runtime::abi::quant::QSoftmax = ::mncc_runtime::abi::quant::QSoftmax {
                    d: #d, y_factor: #f, y_zero_point: #zp,
                };
                ::mncc_runtime::quant::qsoftmax(&SOFTMAX, w.get::<f32>(#wr), #x, y);
            }
        }
        Kernel::QMean(q) => {
            let pool = q.pool;
            let (pixels, c, xs, zx, ys, zy) = (
                usize_lit(q.pixels),
                usize_lit(q.c),
                f32_lit(q.x_scale),
                Literal::i32_unsuffixed(q.x_zero_point),
                f32_lit(q.y_scale),
                Literal::i32_unsuffixed(q.y_zero_point),
            );
            quote! {
                const MEAN: ::mncc_runtime::abi::quant::QMean = ::mncc_runtime::abi::quant::QMean {
                    pixels: #pixels, c: #c, x_scale: #xs, x_zero_point: #zx, y_scale: #ys, y_zero_point: #zy, pool: #pool,
                };
                ::mncc_runtime::quant::qmean(&MEAN, #x, y);
            }
        }
        Kernel::Dequantize {
            elem,
            scale,
            zero_point,
        } => {
            let (ty, scale, zp) = (elem_ty(*elem), f32_lit(*scale), Literal::i32_unsuffixed(*zero_point));
            quote!(::mncc_runtime::dequantize::<#ty>(#x, #scale, #zp, y);)
        }
    }
}

/// The kernel call of a banded pair (`x`, `s`, `y` bound).
fn banded_call(p: &Program, pw: &Layer, dw: &Layer, shape: &PwDwShape, par: bool) -> TokenStream {
    let module = if par {
        quote!(::mncc_runtime::par)
    } else {
        quote!(::mncc_runtime::simd)
    };
    let par_arg = if par { quote!(par,) } else { quote!() };
    let shape = pw_dw_shape(shape);
    let (pw_w, dw_w) = (pw.weights.as_ref().map(range_lit), dw.weights.as_ref().map(range_lit));
    let (pw_ep, dw_ep) = (epilogue(pw, quote!(None)), epilogue(dw, quote!(None)));
    let amx = if on_amx(pw) { amx_scratch(p, par) } else { quote!(None) };
    quote! {
        const SHAPE: ::mncc_runtime::PwDwShape = #shape;
        #module::pointwise_depthwise(
            #par_arg
            &SHAPE,
            ::mncc_runtime::simd::Stage { weights: w.get::<f32>(#pw_w), ep: #pw_ep },
            ::mncc_runtime::simd::Stage { weights: w.get::<f32>(#dw_w), ep: #dw_ep },
            x,
            ::mncc_runtime::simd::BandScratch { rows: s, amx: #amx },
            y,
        );
    }
}

/// Whether the layer is a pointwise one on the AMX tiles.
fn on_amx(l: &Layer) -> bool {
    matches!(&l.kernel, Kernel::Pointwise { amx: true, .. })
}

/// The AMX scratch argument of a call: one thread's part, or
/// `amx::PARTS` of them in the parallel mode.
fn amx_scratch(p: &Program, par: bool) -> TokenStream {
    let len = usize_lit(p.amx_scratch * if par { amx::PARTS } else { 1 });
    quote!(Some(amx.get_mut::<f32>(0..#len)))
}

/// `Some(w.get::<f32>(range))` for the layer's float bias, or `None`.
fn bias_arg(l: &Layer) -> TokenStream {
    match &l.bias {
        Some(r) => {
            let r = range_lit(r);
            quote!(Some(w.get::<f32>(#r)))
        }
        None => quote!(None),
    }
}

/// An integer layer's kernel: its name without the `q` of `quant::q*`
/// (`conv2d`, `depthwise`, `pointwise`: `dynq::*` has the same names),
/// its shape constant and the shape's type.
fn qconv_kernel(kind: &QConvKind) -> (&'static str, TokenStream, TokenStream) {
    match kind {
        QConvKind::Conv2d(s) => ("conv2d", conv_shape(s), quote!(::mncc_runtime::ConvShape)),
        QConvKind::Depthwise(s) => ("depthwise", conv_shape(s), quote!(::mncc_runtime::ConvShape)),
        QConvKind::Pointwise(s) => ("pointwise", pointwise_shape(s), quote!(::mncc_runtime::PointwiseShape)),
    }
}

fn epilogue(l: &Layer, residual: TokenStream) -> TokenStream {
    let bias = bias_arg(l);
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

fn pointwise_layer(p: &Pointwise) -> TokenStream {
    let Pointwise { shape, tiles } = p;
    let (shape, tiles) = (pointwise_shape(shape), pointwise_tiles(tiles));
    quote!(::mncc_runtime::Pointwise { shape: #shape, tiles: #tiles })
}

fn depthwise_layer(d: &Depthwise) -> TokenStream {
    let Depthwise { shape, tiles } = d;
    let (shape, tiles) = (conv_shape(shape), depthwise_tiles(tiles));
    quote!(::mncc_runtime::Depthwise { shape: #shape, tiles: #tiles })
}

fn conv2d_layer(c: &Conv2d<'_>) -> TokenStream {
    let Conv2d {
        shape,
        layout,
        pad_value,
    } = c;
    let shape = conv_shape(shape);
    let layout = match layout {
        Layout::Nhwc => quote!(::mncc_runtime::Layout::Nhwc),
        Layout::Nchw => quote!(::mncc_runtime::Layout::Nchw),
    };
    let pads = pad_value.iter().map(|&v| f32_lit(v));
    quote!(::mncc_runtime::Conv2d { shape: #shape, layout: #layout, pad_value: &[#(#pads),*] })
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
