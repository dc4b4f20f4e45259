//! The operators, one file per family; each file's `OPS` lists its
//! registry entries ([`OpDef`]), and [`all`] lists the families.

pub mod conv;
pub mod elementwise;
pub mod linear;
pub mod pooling;
pub mod quant;
pub mod shape;

use super::registry::{default_domain, OpDef};

/// Every operator, in the order of `ops`' families.
pub fn all() -> impl Iterator<Item = &'static OpDef> {
    [
        conv::OPS,
        elementwise::OPS,
        pooling::OPS,
        linear::OPS,
        shape::OPS,
        quant::OPS,
    ]
    .into_iter()
    .flatten()
}

/// The operator `op` of `domain`, if the front end reads it.
pub fn find(domain: &str, op: &str) -> Option<&'static OpDef> {
    let d = if default_domain(domain) { "" } else { domain };
    all().find(|o| o.name == op && o.domain == d)
}

/// The names of every operator, for error messages.
pub fn names() -> Vec<String> {
    all()
        .map(|o| {
            if o.domain.is_empty() {
                o.name.to_string()
            } else {
                format!("{} ({})", o.name, o.domain)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_is_registered_once() {
        let mut seen = std::collections::HashSet::new();
        for o in all() {
            assert!(seen.insert((o.domain, o.name)), "{} twice", o.name);
            assert!(!o.inputs.is_empty(), "{}", o.name);
            let mut attrs = std::collections::HashSet::new();
            for a in o.attrs {
                assert!(
                    attrs.insert((a.name, *a.opsets.start())),
                    "{}: attribute {} twice",
                    o.name,
                    a.name
                );
            }
        }
        assert!(find("", "Conv").is_some() && find("ai.onnx", "Conv").is_some());
        assert!(find("com.microsoft", "Conv").is_none());
    }
}
