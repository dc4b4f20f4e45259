//! The sizes mncc accepts, stated once. Every size that comes from a file
//! (a dimension, an attribute, a tensor, the arena, the weights, the number
//! of nodes) is checked against these with checked arithmetic before
//! anything of that size is allocated, so an absurd model gets an error
//! saying which limit it breaks and by how much, never an overflow, an
//! out-of-memory abort or a hang. They are far above any MobileNet's (the
//! largest has ~300 nodes, 6.9 M parameters and a few MB of activations at
//! 224x224).

use crate::inspect::mib;

/// Any one dimension, stride, pad or kernel size.
pub const MAX_DIM: usize = 1 << 20;

/// The most images one run may take ([`crate::ir::Graph::batch`]): the
/// generated code loops over them, so this bounds only the caller's
/// buffers' sizes.
pub const MAX_BATCH: usize = 4096;

/// Elements of any one tensor (weight or activation): 64 Mi, 256 MiB of f32.
pub const MAX_TENSOR_ELEMS: usize = 1 << 26;

/// The arena (activations alive at once, planned) in bytes: 1 GiB.
pub const MAX_ARENA_BYTES: usize = 1 << 30;

/// The weight blob (and a weights file) in bytes: 256 MiB.
pub const MAX_WEIGHT_BYTES: usize = 1 << 28;

/// Nodes of a graph (ONNX nodes, or IR nodes of a description).
pub const MAX_NODES: usize = 20_000;

/// An ONNX file in bytes (protobuf's own limit is 2 GiB).
pub const MAX_ONNX_BYTES: usize = (1 << 31) - 1;

/// A TOML description in bytes.
pub const MAX_TOML_BYTES: usize = 1 << 20;

/// An error unless `n` bytes of `what` are within `max`, saying by how much.
pub fn check_bytes(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n <= max {
        return Ok(());
    }
    Err(format!(
        "{what}: {} is {:.1}x the limit of {}",
        mib(n),
        n as f64 / max as f64,
        mib(max)
    ))
}

/// Why an input file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system's error (missing file, permissions).
    Io(std::io::Error),
    /// Refused: not a regular file, or over its limit (the message says).
    Refused(String),
}

/// Reads the input file `path` (`what` names it in errors: "ONNX model",
/// "weights file"), refusing what is not a regular file (a FIFO or a
/// device would block or never end) and what is larger than `max` bytes,
/// before reading it.
pub fn read_file(path: &std::path::Path, what: &str, max: usize) -> Result<Vec<u8>, String> {
    read(path, what, max).map_err(|e| match e {
        ReadError::Io(io) => format!("cannot read {what}: {io}"),
        ReadError::Refused(m) => m,
    })
}

/// [`read_file`], with the kinds of error apart.
pub fn read(path: &std::path::Path, what: &str, max: usize) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::Refused(format!(
            "the {what} is not a regular file (a directory, FIFO or device)"
        )));
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    check_bytes(&format!("the {what}"), len, max).map_err(ReadError::Refused)?;
    let mut data = Vec::with_capacity(len);
    std::fs::File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut data))
        .map_err(ReadError::Io)?;
    // A file that grows while read is cut at the limit and refused.
    check_bytes(&format!("the {what}"), data.len(), max).map_err(ReadError::Refused)?;
    Ok(data)
}

/// The number of elements of `shape`, if it is within [`MAX_TENSOR_ELEMS`];
/// else an error naming the shape and by how much it is over.
pub fn elements(shape: &[usize]) -> Result<usize, String> {
    let n = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if n > MAX_TENSOR_ELEMS as u128 {
        let times = n as f64 / MAX_TENSOR_ELEMS as f64;
        return Err(format!(
            "a tensor of shape {shape:?} has {n} elements, {times:.1}x the limit of {MAX_TENSOR_ELEMS} (256 MiB of f32)"
        ));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_counts_never_overflow() {
        assert_eq!(elements(&[1, 3, 224, 224]), Ok(150_528));
        assert_eq!(elements(&[]), Ok(1));
        let e = elements(&[1, 3, 1 << 31, 1 << 31]).unwrap_err();
        assert!(e.contains("limit"), "{e}");
        assert!(elements(&[usize::MAX, usize::MAX, usize::MAX]).is_err());
        assert_eq!(
            check_bytes("x", 5 << 30, 1 << 30),
            Err("x: 5.00 GiB is 5.0x the limit of 1.00 GiB".into())
        );
    }
}
