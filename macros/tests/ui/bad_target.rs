mncc_runtime::mobilenet!("models/tiny.toml", target = "avx9");
mncc_runtime::mobilenet!("models/tiny.toml", tile = "x86-64");
mncc_runtime::mobilenet!("models/tiny.toml", input_shape = [1, 3, 32, 32]);

fn main() {}
