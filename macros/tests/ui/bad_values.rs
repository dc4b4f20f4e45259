mncc_runtime::mobilenet!("models/bad_values.toml");

fn main() {}
