mncc_runtime::mobilenet!("models/no_weights.toml");

fn main() {}
