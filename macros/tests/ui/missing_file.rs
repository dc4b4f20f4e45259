mncc_runtime::mobilenet!("models/no_such_model.toml");

fn main() {}
