mncc_runtime::mobilenet!();

fn main() {}
