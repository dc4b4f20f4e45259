//! The checks every kernel makes at entry: slice lengths against the shape
//! (a failure is a compiler bug, never a user error: the message names the
//! kernel and the slice), and the epilogue's slices.

use crate::Epilogue;

/// Panics with a message naming the kernel and the slice unless
/// `got == want`.
#[inline(always)]
#[track_caller]
pub(crate) fn check_len(kernel: &str, what: &str, got: usize, want: usize) {
    assert!(
        got == want,
        "{kernel}: `{what}` has {got} elements, the shape needs {want}"
    );
}

/// Checks the epilogue's slices against `channels` output channels and an
/// output of `out_len` elements.
#[inline(always)]
#[track_caller]
pub(crate) fn check_epilogue(kernel: &str, ep: &Epilogue<'_>, channels: usize, out_len: usize) {
    if let Some(bias) = ep.bias {
        check_len(kernel, "ep.bias", bias.len(), channels);
    }
    if let Some(residual) = ep.residual {
        check_len(kernel, "ep.residual", residual.len(), out_len);
    }
}
