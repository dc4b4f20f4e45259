mncc_runtime::mobilenet!("models/missing_weights_file.toml");

fn main() {}
