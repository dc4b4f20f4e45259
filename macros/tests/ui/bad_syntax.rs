mncc_runtime::mobilenet!("models/bad_syntax.toml");

fn main() {}
