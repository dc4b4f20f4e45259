//! placeholder
extern crate proc_macro;
use proc_macro::TokenStream;
/// placeholder
#[proc_macro]
pub fn mobilenet(_input: TokenStream) -> TokenStream { TokenStream::new() }
