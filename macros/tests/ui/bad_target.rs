mncc_runtime::mobilenet!("models/tiny.toml", target = "avx9");
mncc_runtime::mobilenet!("models/tiny.toml", tile = "x86-64");

fn main() {}
