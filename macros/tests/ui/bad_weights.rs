mncc_runtime::mobilenet!("models/bad_weights.toml");

fn main() {}
