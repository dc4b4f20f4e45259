mncc_runtime::mobilenet!("models/unknown_field.toml");

fn main() {}
