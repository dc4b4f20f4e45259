//! Minimal reader and writer for NumPy `.npy` files (std only, no panics on any input).
//!
//! Used for `mncc verify`'s inputs and expected outputs and the golden test
//! data (produced by Python scripts under `tests/fixtures/`). Hand-written
//! rather than `npyz`: npyz 0.8.4 multiplies a header's dimensions without
//! overflow checks (`read.rs`, `NpyHeader::from_parts`), so a hostile
//! header panics in debug builds and is mis-sized in release ones; this
//! reader rejects it (`rejects_wrong_length`).
//!
//! Reads format versions 1.0, 2.0 and 3.0; writes 1.0 (2.0 only if the header
//! would not fit, which no real shape reaches). C order only. Supported dtypes:
//! `<f4`, `<f8`, `<f2` (read as `f32`: every half is one) and `|u1` (also
//! spelled `<u1`), held as [`NpyData`].
//!
//! The format (numpy `lib/format.py`): the magic `\x93NUMPY`, a major and a
//! minor version byte, the header length (u16 LE for 1.0, u32 LE for 2.0/3.0),
//! then the header: a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }` padded with
//! spaces and ending in `\n` (latin-1 for 1.0/2.0, UTF-8 for 3.0), then the raw
//! data.

use std::fmt;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy aligns the data start to this many bytes (`ARRAY_ALIGN`).
const ALIGN: usize = 64;

/// The values of a `.npy` array, by dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`
    F32(Vec<f32>),
    /// `<f8`
    F64(Vec<f64>),
    /// `|u1` / `<u1`
    U8(Vec<u8>),
}

/// A parsed `.npy` array: its shape (C order) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl Npy {
    /// All values converted to `f64` (exact for every supported dtype).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
        }
    }

    /// Number of values (the product of the shape).
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype as numpy spells it: `<f4`, `<f8` or `|u1`.
    pub fn dtype(&self) -> &'static str {
        match &self.data {
            NpyData::F32(_) => Dtype::F32.descr(),
            NpyData::F64(_) => Dtype::F64.descr(),
            NpyData::U8(_) => Dtype::U8.descr(),
        }
    }
}

/// What is wrong with a `.npy` file, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(msg: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(msg.into()))
}

/// Reads and parses a `.npy` file; errors name the file.
pub fn read(path: &Path) -> Result<Npy, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| NpyError(format!("cannot read {}: {e}", path.display())))?;
    parse(&bytes).map_err(|e| NpyError(format!("{}: {}", path.display(), e.0)))
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Npy, NpyError> {
    if bytes.len() < MAGIC.len() || !bytes.starts_with(MAGIC) {
        return err("not a .npy file (bad magic)");
    }
    let (major, minor) = match (bytes.get(6), bytes.get(7)) {
        (Some(&major), Some(&minor)) => (major, minor),
        _ => return err("truncated .npy file: no format version"),
    };
    let (len_size, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        _ => {
            return err(format!(
                "unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            ))
        }
    };
    let header_start = 8 + len_size;
    let header_len = match bytes.get(8..header_start) {
        Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
        Some(&[a, b, c, d]) => match usize::try_from(u32::from_le_bytes([a, b, c, d])) {
            Ok(n) => n,
            Err(_) => return err("header length does not fit in memory"),
        },
        _ => return err("truncated .npy file: no header length"),
    };
    let data_start = match header_start.checked_add(header_len) {
        Some(n) => n,
        None => return err("header length does not fit in memory"),
    };
    let header_bytes = match bytes.get(header_start..data_start) {
        Some(h) => h,
        None => {
            return err(format!(
                "truncated .npy file: header of {header_len} bytes but only {} bytes follow",
                bytes.len().saturating_sub(header_start)
            ))
        }
    };
    let header: String = if utf8 {
        match std::str::from_utf8(header_bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => return err("bad header: not UTF-8"),
        }
    } else {
        // latin-1: every byte is the code point of the same value.
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let header = parse_header(&header)?;
    if header.fortran_order {
        return err("fortran_order arrays are not supported (C order only)");
    }

    let count = match header.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) {
        Some(n) => n,
        None => return err(format!("header says shape {:?}, too many values to hold", header.shape)),
    };
    let item = header.dtype.size();
    // `bytes.get(data_start..)` cannot fail: the header slice above ended there.
    let data = bytes.get(data_start..).unwrap_or(&[]);
    let expected_bytes = count.checked_mul(item);
    if expected_bytes != Some(data.len()) {
        let held = if data.len() % item == 0 {
            format!("{}", data.len() / item)
        } else {
            format!(
                "{} bytes, not a whole number of {} values",
                data.len(),
                header.dtype.descr()
            )
        };
        return err(format!(
            "header says shape {:?} ({count} values) but the file holds {held}",
            header.shape
        ));
    }

    let data = match header.dtype {
        Dtype::F32 => NpyData::F32(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::F64 => NpyData::F64(
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        Dtype::F16 => NpyData::F32(
            data.chunks_exact(2)
                .map(|c| mncc::weights::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        Dtype::U8 => NpyData::U8(data.to_vec()),
    };
    Ok(Npy {
        shape: header.shape,
        data,
    })
}

/// Writes a `<f4` array (format 1.0). Fails with `InvalidInput` if the shape's
/// product is not `data.len()`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    check_len(shape, data.len())?;
    std::fs::write(path, to_bytes_f32(shape, data))
}

/// Writes a `|u1` array (format 1.0). Fails with `InvalidInput` if the shape's
/// product is not `data.len()`.
pub fn write_u8(path: &Path, shape: &[usize], data: &[u8]) -> std::io::Result<()> {
    check_len(shape, data.len())?;
    std::fs::write(path, to_bytes_u8(shape, data))
}

/// The bytes of a `<f4` `.npy` file, laid out as `numpy.save` does. The caller
/// keeps the shape's product equal to `data.len()` (otherwise the result will
/// not parse back).
pub fn to_bytes_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = preamble(Dtype::F32, shape, data.len() * 4);
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// The bytes of a `|u1` `.npy` file, laid out as `numpy.save` does. The caller
/// keeps the shape's product equal to `data.len()`.
pub fn to_bytes_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = preamble(Dtype::U8, shape, data.len());
    out.extend_from_slice(data);
    out
}

fn check_len(shape: &[usize], len: usize) -> std::io::Result<()> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count == Some(len) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("shape {shape:?} does not hold {len} values"),
        ))
    }
}

/// Magic, version, header length and the padded header, ready for the data.
fn preamble(dtype: Dtype, shape: &[usize], data_bytes: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape_text = match dims.as_slice() {
        [] => "()".to_owned(),
        [d] => format!("({d},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.descr()
    );
    // Pad with spaces so that magic + version + length + header (ending in
    // '\n') is a multiple of ALIGN, like numpy.
    let padded = |preamble_len: usize| {
        let unpadded = preamble_len + dict.len() + 1;
        let pad = (ALIGN - unpadded % ALIGN) % ALIGN;
        let mut h = dict.clone();
        h.extend(std::iter::repeat_n(' ', pad));
        h.push('\n');
        h
    };

    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    let v1 = padded(10);
    let header = if let Ok(len) = u16::try_from(v1.len()) {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        v1
    } else {
        // Version 2.0 for headers over 64 KiB (a shape with thousands of dims).
        let v2 = padded(12);
        let len = u32::try_from(v2.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        v2
    };
    out.reserve_exact(header.len() + data_bytes);
    out.extend_from_slice(header.as_bytes());
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    F16,
    U8,
}

impl Dtype {
    fn from_descr(descr: &str) -> Result<Dtype, NpyError> {
        match descr {
            "<f4" => Ok(Dtype::F32),
            "<f8" => Ok(Dtype::F64),
            "<f2" => Ok(Dtype::F16),
            "|u1" | "<u1" => Ok(Dtype::U8),
            other => err(format!("unsupported dtype '{other}' (supported: <f4, <f8, <f2, |u1)")),
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
            Dtype::F16 => "<f2",
            Dtype::U8 => "|u1",
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::F16 => 2,
            Dtype::U8 => 1,
        }
    }
}

struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the header dict: exactly the keys 'descr', 'fortran_order', 'shape'.
fn parse_header(text: &str) -> Result<Header, NpyError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.skip_ws();
    p.expect('{')?;
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(':')?;
        p.skip_ws();
        let value = p.value()?;
        let slot_was_set = match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr.replace(s).is_some(),
            ("fortran_order", Value::Bool(b)) => fortran.replace(b).is_some(),
            ("shape", Value::Tuple(t)) => shape.replace(t).is_some(),
            ("descr", _) => return p.fail("'descr' is not a string"),
            ("fortran_order", _) => return p.fail("'fortran_order' is not True or False"),
            ("shape", _) => return p.fail("'shape' is not a tuple of integers"),
            (other, _) => return p.fail(&format!("unexpected key '{other}'")),
        };
        if slot_was_set {
            return p.fail(&format!("key '{key}' given twice"));
        }
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        if p.eat('}') {
            break;
        }
        return p.fail("expected ',' or '}'");
    }
    p.skip_ws();
    if p.pos != p.chars.len() {
        return p.fail("unexpected text after the dict");
    }
    let descr = descr.ok_or_else(|| NpyError("bad header: no 'descr' key".into()))?;
    let fortran_order = fortran.ok_or_else(|| NpyError("bad header: no 'fortran_order' key".into()))?;
    let shape = shape.ok_or_else(|| NpyError("bad header: no 'shape' key".into()))?;
    Ok(Header {
        dtype: Dtype::from_descr(&descr)?,
        fortran_order,
        shape,
    })
}

/// Just enough of a Python literal parser for the header dict.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn fail<T>(&self, what: &str) -> Result<T, NpyError> {
        let text: String = self.chars.iter().collect();
        err(format!(
            "bad header: {what} at offset {} in {:?}",
            self.pos,
            text.trim_end()
        ))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(&format!("expected '{c}'"))
        }
    }

    fn value(&mut self) -> Result<Value, NpyError> {
        match self.peek() {
            Some('\'') | Some('"') => Ok(Value::Str(self.string()?)),
            Some('(') => Ok(Value::Tuple(self.int_seq('(', ')')?)),
            Some('[') => Ok(Value::Tuple(self.int_seq('[', ']')?)),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    _ => {
                        self.pos = start;
                        self.fail(&format!("unexpected word '{word}'"))
                    }
                }
            }
            _ => self.fail("expected a value"),
        }
    }

    /// A quoted string without escapes (numpy never writes any in these keys).
    fn string(&mut self) -> Result<String, NpyError> {
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => return self.fail("expected a quoted string"),
        };
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some('\\') => return self.fail("escapes in strings are not supported"),
                Some(c) if c == quote => break,
                Some(_) => self.pos += 1,
            }
        }
        let s = self.chars[start..self.pos].iter().collect();
        self.pos += 1;
        Ok(s)
    }

    /// `(1, 3, 224, 224)`, `(5,)`, `()`; a trailing `L` (Python 2 longs) is allowed.
    fn int_seq(&mut self, open: char, close: char) -> Result<Vec<usize>, NpyError> {
        self.expect(open)?;
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(close) {
                return Ok(out);
            }
            out.push(self.uint()?);
            self.skip_ws();
            if self.eat(',') {
                continue;
            }
            if self.eat(close) {
                return Ok(out);
            }
            return self.fail(&format!("expected ',' or '{close}'"));
        }
    }

    fn uint(&mut self) -> Result<usize, NpyError> {
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            n = match n.checked_mul(10).and_then(|n| n.checked_add(d as usize)) {
                Some(n) => n,
                None => {
                    self.pos = start;
                    return self.fail("dimension too large");
                }
            };
            self.pos += 1;
        }
        if self.pos == start {
            return self.fail("expected a non-negative integer dimension");
        }
        self.eat('L');
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.save(f, np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]], dtype='<f4'))`
    /// with numpy 2.4.
    const NUMPY_F4_2X3: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n\x00\x00\xc0?\x00\x00\x00\xc0\x00\x00P@\x00\x00\x00\x00o\x12\x83:\x00\x00\xe0\xc0";

    /// `np.save(f, np.arange(5, dtype=np.uint8) * 50)`
    const NUMPY_U1_5: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }                                                            \n\x002d\x96\xc8";

    /// `np.lib.format.write_array(f, np.array([0.5, -1.25], dtype='<f8'), version=(2, 0))`
    const NUMPY_F8_V2: &[u8] = b"\x93NUMPY\x02\x00t\x00\x00\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }                                                          \n\x00\x00\x00\x00\x00\x00\xe0?\x00\x00\x00\x00\x00\x00\xf4\xbf";

    /// `np.save(f, np.array(2.5, dtype='<f8'))` (0-d)
    const NUMPY_F8_SCALAR: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), }                                                              \n\x00\x00\x00\x00\x00\x00\x04@";

    /// `np.lib.format.write_array(f, np.array([1.0], dtype='<f4'), version=(3, 0))`
    const NUMPY_F4_V3: &[u8] = b"\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }                                                          \n\x00\x00\x80?";

    fn msg(r: Result<Npy, NpyError>) -> String {
        match r {
            Ok(n) => panic!("expected an error, parsed {n:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A version 1.0 file with the given header text (padded) and data.
    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_owned();
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_numpy_f4() {
        let n = parse(NUMPY_F4_2X3).unwrap();
        assert_eq!(n.shape, vec![2, 3]);
        assert_eq!(n.dtype(), "<f4");
        assert_eq!(n.data, NpyData::F32(vec![1.5, -2.0, 3.25, 0.0, 1e-3, -7.0]));
        assert_eq!(n.len(), 6);
        assert!(!n.is_empty());
        assert_eq!(n.to_f64()[2], 3.25);
    }

    #[test]
    fn reads_numpy_u1() {
        let n = parse(NUMPY_U1_5).unwrap();
        assert_eq!(n.shape, vec![5]);
        assert_eq!(n.data, NpyData::U8(vec![0, 50, 100, 150, 200]));
        assert_eq!(n.to_f64(), vec![0.0, 50.0, 100.0, 150.0, 200.0]);
    }

    #[test]
    fn reads_numpy_v2_f8() {
        let n = parse(NUMPY_F8_V2).unwrap();
        assert_eq!(n.shape, vec![2]);
        assert_eq!(n.data, NpyData::F64(vec![0.5, -1.25]));
    }

    #[test]
    fn reads_numpy_v3() {
        let n = parse(NUMPY_F4_V3).unwrap();
        assert_eq!(n.shape, vec![1]);
        assert_eq!(n.data, NpyData::F32(vec![1.0]));
    }

    #[test]
    fn reads_numpy_scalar() {
        let n = parse(NUMPY_F8_SCALAR).unwrap();
        assert!(n.shape.is_empty());
        assert_eq!(n.data, NpyData::F64(vec![2.5]));
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn writes_exactly_what_numpy_writes() {
        let data = [1.5f32, -2.0, 3.25, 0.0, 1e-3, -7.0];
        assert_eq!(to_bytes_f32(&[2, 3], &data), NUMPY_F4_2X3);
        assert_eq!(to_bytes_u8(&[5], &[0, 50, 100, 150, 200]), NUMPY_U1_5);
    }

    #[test]
    fn round_trips() {
        for shape in [vec![], vec![0], vec![7], vec![2, 3, 4], vec![1, 3, 5, 5], vec![0, 4]] {
            let n: usize = shape.iter().product();
            let f: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
            let back = parse(&to_bytes_f32(&shape, &f)).unwrap();
            assert_eq!(back.shape, shape);
            assert_eq!(back.data, NpyData::F32(f));
            assert_eq!(back.is_empty(), n == 0);

            let u: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let bytes = to_bytes_u8(&shape, &u);
            let header_end = bytes.len() - u.len();
            assert_eq!(header_end % ALIGN, 0, "data start is aligned");
            let back = parse(&bytes).unwrap();
            assert_eq!(back.shape, shape);
            assert_eq!(back.data, NpyData::U8(u));
        }
        // Special values survive bit for bit.
        let special = [f32::NAN, f32::INFINITY, -0.0, f32::MIN_POSITIVE, f32::MAX];
        match parse(&to_bytes_f32(&[5], &special)).unwrap().data {
            NpyData::F32(v) => {
                let a: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                let b: Vec<u32> = special.iter().map(|x| x.to_bits()).collect();
                assert_eq!(a, b);
            }
            other => panic!("wrong dtype {other:?}"),
        }
    }

    #[test]
    fn round_trips_through_files() {
        let dir = std::env::temp_dir().join(format!("mncc-npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pf = dir.join("a.npy");
        write_f32(&pf, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let n = read(&pf).unwrap();
        assert_eq!(n.shape, vec![2, 2]);
        assert_eq!(n.to_f64(), vec![1.0, 2.0, 3.0, 4.0]);
        let pu = dir.join("b.npy");
        write_u8(&pu, &[1, 2, 2, 1], &[9, 8, 7, 6]).unwrap();
        assert_eq!(read(&pu).unwrap().data, NpyData::U8(vec![9, 8, 7, 6]));

        let e = write_f32(&pf, &[3], &[1.0]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let e = read(&dir.join("missing.npy")).unwrap_err();
        assert!(e.0.starts_with("cannot read "), "{e}");
        std::fs::write(&pf, b"hello").unwrap();
        let e = read(&pf).unwrap_err();
        assert!(e.0.ends_with("a.npy: not a .npy file (bad magic)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_version_2_for_huge_headers() {
        let shape = vec![1usize; 30_000];
        let bytes = to_bytes_u8(&shape, &[42]);
        assert_eq!(&bytes[6..8], &[2, 0]);
        assert_eq!((bytes.len() - 1) % ALIGN, 0);
        let n = parse(&bytes).unwrap();
        assert_eq!(n.shape, shape);
        assert_eq!(n.data, NpyData::U8(vec![42]));
    }

    #[test]
    fn accepts_header_variants() {
        // Other key order, double quotes, no trailing comma, '<u1', list shape,
        // Python 2 longs, extra whitespace.
        let h = "{ \"shape\" : [2L,1] , \"fortran_order\":False,'descr':'<u1'}  ";
        let n = parse(&with_header(h, &[3, 4])).unwrap();
        assert_eq!(n.shape, vec![2, 1]);
        assert_eq!(n.data, NpyData::U8(vec![3, 4]));
    }

    #[test]
    fn rejects_bad_magic_and_version() {
        assert_eq!(msg(parse(b"")), "not a .npy file (bad magic)");
        assert_eq!(msg(parse(b"PK\x03\x04 zip")), "not a .npy file (bad magic)");
        let mut v = NUMPY_U1_5.to_vec();
        v[6] = 4;
        assert_eq!(
            msg(parse(&v)),
            "unsupported .npy format version 4.0 (supported: 1.0, 2.0, 3.0)"
        );
    }

    #[test]
    fn rejects_every_truncation() {
        for file in [NUMPY_F4_2X3, NUMPY_U1_5, NUMPY_F8_V2, NUMPY_F8_SCALAR, NUMPY_F4_V3] {
            for len in 0..file.len() {
                assert!(parse(&file[..len]).is_err(), "prefix of {len} bytes parsed");
            }
        }
        assert_eq!(msg(parse(&NUMPY_U1_5[..9])), "truncated .npy file: no header length");
        assert_eq!(
            msg(parse(&NUMPY_U1_5[..50])),
            "truncated .npy file: header of 118 bytes but only 40 bytes follow"
        );
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(
            msg(parse(&NUMPY_F4_2X3[..NUMPY_F4_2X3.len() - 4])),
            "header says shape [2, 3] (6 values) but the file holds 5"
        );
        assert_eq!(
            msg(parse(&NUMPY_F4_2X3[..NUMPY_F4_2X3.len() - 1])),
            "header says shape [2, 3] (6 values) but the file holds \
             23 bytes, not a whole number of <f4 values"
        );
        let mut long = NUMPY_U1_5.to_vec();
        long.push(0);
        assert_eq!(
            msg(parse(&long)),
            "header says shape [5] (5 values) but the file holds 6"
        );
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }";
        assert_eq!(
            msg(parse(&with_header(h, &[0; 8]))),
            "header says shape [1, 3] (3 values) but the file holds 2"
        );
        let h = "{'descr': '<f4', 'fortran_order': False, \
                 'shape': (18446744073709551615, 4294967296, 4294967296), }";
        let e = msg(parse(&with_header(h, &[])));
        assert!(e.contains("too many values") || e.contains("too large"), "{e}");
    }

    #[test]
    fn rejects_unsupported_arrays() {
        let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }";
        assert_eq!(
            msg(parse(&with_header(h, &[0; 8]))),
            "unsupported dtype '<i8' (supported: <f4, <f8, <f2, |u1)"
        );
        // Halves are read as the floats they are.
        let h = "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }";
        let got = parse(&with_header(h, &[0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00])).unwrap();
        assert_eq!(got.data, NpyData::F32(vec![1.0, -2.0, 2f32.powi(-24)]));
        let h = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }";
        assert!(msg(parse(&with_header(h, &[0; 4]))).contains("'>f4'"));
        let h = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
        assert_eq!(
            msg(parse(&with_header(h, &[0; 16]))),
            "fortran_order arrays are not supported (C order only)"
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let cases = [
            ("", "expected '{'"),
            ("[1, 2]", "expected '{'"),
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape' key"),
            ("{'fortran_order': False, 'shape': (1,)}", "no 'descr' key"),
            ("{'descr': '<f4', 'shape': (1,)}", "no 'fortran_order' key"),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
                "expected a value",
            ),
            (
                "{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}",
                "unexpected word 'Nope'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': 3}",
                "expected a value",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "non-negative integer",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2}",
                "expected ',' or ')'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': 5, 'fortran_order': False, 'shape': (1,)}",
                "expected a value",
            ),
            (
                "{'descr': (1,), 'fortran_order': False, 'shape': (1,)}",
                "'descr' is not a string",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': 'x'}",
                "'shape' is not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "expected a value",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': True}",
                "unexpected key 'x'",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                "given twice",
            ),
            (
                "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
                "expected ',' or '}'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk",
                "after the dict",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
                "expected ',' or '}'",
            ),
            ("{'descr': '<\\f4', 'fortran_order': False, 'shape': (1,)}", "escapes"),
            ("{'descr", "unterminated string"),
        ];
        for (header, want) in cases {
            let e = msg(parse(&with_header(header, &[0; 4])));
            assert!(e.starts_with("bad header: "), "{header:?}: {e}");
            assert!(e.contains(want), "{header:?}: {e:?} does not contain {want:?}");
        }
        // Version 3.0 headers must be UTF-8.
        let mut v3 = NUMPY_F4_V3.to_vec();
        v3[14] = 0xff;
        assert_eq!(msg(parse(&v3)), "bad header: not UTF-8");
    }

    #[test]
    fn never_panics_on_corrupted_bytes() {
        // Every single-byte corruption of real files: must return, Ok or Err.
        for file in [NUMPY_F4_2X3, NUMPY_F8_V2, NUMPY_F4_V3] {
            for i in 0..file.len() {
                for b in [0u8, b'(', b')', b',', b'\'', b'{', b'}', b'9', b' ', 0x80, 0xff] {
                    let mut v = file.to_vec();
                    v[i] = b;
                    let _ = parse(&v);
                }
            }
        }
        // Huge declared header lengths.
        let mut v = NUMPY_F8_V2.to_vec();
        v[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(msg(parse(&v)).starts_with("truncated .npy file"));
    }
}
