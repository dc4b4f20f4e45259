mncc_runtime::mobilenet!(224);

fn main() {}
