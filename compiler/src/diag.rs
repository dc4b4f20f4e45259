//! Diagnostics as data: what went wrong, where (the file, and the TOML line
//! and column or the ONNX node and attribute), and how to fix it. Rendered
//! once, here, for the command line, the build script and the macro (which
//! spans its path literal and shows the same text).

use std::fmt;
use std::path::{Path, PathBuf};

/// `s`, cut to about 60 characters for an error message.
pub fn cut(s: &str) -> String {
    cut_at(s, 60)
}

/// `s`, cut to `max` characters and the count of all of them.
fn cut_at(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}... ({n} characters)")
    }
}

/// A name from an input file, cut past 200 characters.
fn name(s: &str) -> String {
    cut_at(s, 200)
}

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Compilation cannot go on.
    Error,
    /// Worth knowing; compilation goes on.
    Warning,
}

/// Where in the input a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (or nothing more precise is known).
    File,
    /// A TOML description: 1-based line and column.
    Toml {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// An ONNX node (its name, or `OpType_index` when it has none), and the
    /// attribute concerned, if one is.
    OnnxNode {
        /// Node name.
        node: String,
        /// Operator type.
        op: String,
        /// The attribute, if the problem is one.
        attribute: Option<String>,
    },
    /// A named ONNX value: a graph input or output, or an initializer.
    OnnxValue {
        /// What it is: `input`, `output`, `initializer`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A node of the compiler's graph (named after the ONNX node or the
    /// TOML layer it came from).
    Node {
        /// Node name.
        name: String,
        /// Its op (`Conv`, `Dense`, ...).
        op: String,
    },
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// How bad.
    pub severity: Severity,
    /// The file it is in, as the user named it.
    pub file: Option<PathBuf>,
    /// Where in the file.
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// How to fix it, if there is something to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `location`.
    pub fn error(location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            location,
            message: message.into(),
            help: None,
        }
    }

    /// An error with no location more precise than the file.
    pub fn msg(message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(Location::File, message)
    }

    /// An error at a TOML line and column.
    pub fn toml(line: usize, column: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(Location::Toml { line, column }, message)
    }

    /// An error at an ONNX node (and attribute).
    pub fn onnx(node: &str, op: &str, attribute: Option<&str>, message: impl Into<String>) -> Diagnostic {
        let location = Location::OnnxNode {
            node: node.into(),
            op: op.into(),
            attribute: attribute.map(Into::into),
        };
        Diagnostic::error(location, message)
    }

    /// An error at a node of the compiler's graph.
    pub fn node(name: &str, op: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(
            Location::Node {
                name: name.into(),
                op: op.into(),
            },
            message,
        )
    }

    /// The same, in `file` (unless it names one already).
    pub fn in_file(mut self, file: &Path) -> Diagnostic {
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
        }
        self
    }

    /// The same, with `help`.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Where, as text: `file:line:column`, `file: node `n` (Conv),
    /// attribute `pads``, ... (empty when nothing is known).
    pub fn position(&self) -> String {
        let file = self.file.as_ref().map(|f| f.display().to_string());
        let at = match &self.location {
            Location::File => None,
            Location::Toml { line, column } => {
                return match file {
                    Some(f) => format!("{f}:{line}:{column}"),
                    None => format!("line {line}, column {column}"),
                }
            }
            // Names come from the file: a hostile one is cut (real
            // exporters' names are under 100 characters).
            Location::OnnxNode { node, op, attribute } => Some(match attribute {
                Some(a) => format!("node `{}` ({}), attribute `{}`", name(node), name(op), name(a)),
                None => format!("node `{}` ({})", name(node), name(op)),
            }),
            Location::OnnxValue { kind, name: n } => Some(format!("{kind} `{}`", name(n))),
            Location::Node { name: n, op } => Some(format!("node `{}` ({})", name(n), name(op))),
        };
        match (file, at) {
            (Some(f), Some(a)) => format!("{f}: {a}"),
            (Some(f), None) => f,
            (None, Some(a)) => a,
            (None, None) => String::new(),
        }
    }
}

/// `position: message`, then `help: ...` on its own line.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pos = self.position();
        if pos.is_empty() {
            f.write_str(&self.message)?;
        } else {
            write!(f, "{pos}: {}", self.message)?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// A compile error: one or more diagnostics, all the problems found.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(pub Vec<Diagnostic>);

impl Error {
    /// One problem, with no location.
    pub fn msg(m: impl Into<String>) -> Error {
        Error(vec![Diagnostic::msg(m)])
    }

    /// Every diagnostic placed in `file` (unless it names one already).
    pub fn in_file(self, file: &Path) -> Error {
        Error(self.0.into_iter().map(|d| d.in_file(file)).collect())
    }

    /// The diagnostics.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The same as `Display`, so a build script's `.unwrap()` prints readable
/// problems.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n{self}")
    }
}

impl std::error::Error for Error {}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Error {
        Error(vec![d])
    }
}

impl From<Vec<Diagnostic>> for Error {
    fn from(d: Vec<Diagnostic>) -> Error {
        Error(d)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error::msg(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_kind_of_place() {
        let f = Path::new("m.onnx");
        let d = Diagnostic::onnx("conv1", "Conv", Some("pads"), "pads [1, 2] must have 4 values").in_file(f);
        assert_eq!(
            d.to_string(),
            "m.onnx: node `conv1` (Conv), attribute `pads`: pads [1, 2] must have 4 values"
        );
        let d = Diagnostic::toml(3, 14, "bad")
            .in_file(Path::new("m.toml"))
            .with_help("try 224");
        assert_eq!(d.to_string(), "m.toml:3:14: bad\n  help: try 224");
        assert_eq!(Diagnostic::msg("plain").to_string(), "plain");
        let e = Error(vec![Diagnostic::msg("a"), Diagnostic::node("n", "Add", "b")]).in_file(f);
        assert_eq!(e.to_string(), "m.onnx: a\nm.onnx: node `n` (Add): b");
    }
}
