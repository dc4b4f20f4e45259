//! The sizes mncc accepts, stated once. Every size that comes from a file
//! (a dimension, an attribute, a tensor, the arena, the weights, the number
//! of nodes) is checked against these with checked arithmetic before
//! anything of that size is allocated, so an absurd model gets an error
//! saying which limit it breaks and by how much, never an overflow, an
//! out-of-memory abort or a hang. They are far above any MobileNet's (the
//! largest has ~300 nodes, 6.9 M parameters and a few MB of activations at
//! 224x224).

/// Any one dimension, stride, pad or kernel size.
pub const MAX_DIM: usize = 1 << 20;

/// Elements of any one tensor (weight or activation): 64 Mi, 256 MiB of f32.
pub const MAX_TENSOR_ELEMS: usize = 1 << 26;

/// The arena (activations alive at once, planned) in bytes: 1 GiB.
pub const MAX_ARENA_BYTES: usize = 1 << 30;

/// The weight blob (and a weights file) in bytes: 256 MiB.
pub const MAX_WEIGHT_BYTES: usize = 1 << 28;

/// Nodes of a graph (ONNX nodes, or IR nodes of a description).
pub const MAX_NODES: usize = 20_000;

/// An ONNX file in bytes (protobuf's own limit is 2 GiB).
pub const MAX_ONNX_BYTES: u64 = (1 << 31) - 1;

/// A TOML description in bytes.
pub const MAX_TOML_BYTES: u64 = 1 << 20;

/// Reads the input file `path` (`what` names it in errors: "ONNX model",
/// "weights file"), refusing what is not a regular file (a FIFO or a
/// device would block or never end) and what is larger than `max` bytes,
/// before reading it.
pub fn read_file(path: &std::path::Path, what: &str, max: u64) -> Result<Vec<u8>, String> {
    read_file_or_io(path, what, max).map_err(|e| match e {
        Ok(io) => format!("cannot read {what}: {io}"),
        Err(m) => m,
    })
}

/// [`read_file`], with an I/O error (`Ok`) apart from the others (`Err`).
pub fn read_file_or_io(
    path: &std::path::Path,
    what: &str,
    max: u64,
) -> Result<Vec<u8>, Result<std::io::Error, String>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(Ok)?;
    if !meta.is_file() {
        return Err(Err(format!(
            "the {what} is not a regular file (a directory, FIFO or device)"
        )));
    }
    if meta.len() > max {
        return Err(Err(format!(
            "the {what} is {}; the limit is {}",
            bytes(meta.len() as u128),
            bytes(max as u128)
        )));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut data))
        .map_err(Ok)?;
    if data.len() as u64 > max {
        return Err(Err(format!(
            "the {what} grew past {} while being read",
            bytes(max as u128)
        )));
    }
    Ok(data)
}

/// `n` bytes as a short human size.
pub fn bytes(n: u128) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
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
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
