// A user crate: the generated items compile without warnings and run.
#![deny(warnings)]

mod model {
    mncc_runtime::mobilenet!("models/tiny.toml");
}

// Another target's schedule (the AMX tiles where the CPU has them).
mod amx {
    mncc_runtime::mobilenet!("models/tiny.toml", target = "x86-64-amx");
}

fn main() {
    assert_eq!(model::INPUT_SHAPE, [1, 96, 96, 3]);
    assert_eq!(model::OUTPUT_LEN, 10);
    let input: Box<model::Input> = (0..model::INPUT_LEN)
        .map(|i| (i * 7 % 256) as u8)
        .collect::<Vec<u8>>()
        .into_boxed_slice()
        .try_into()
        .unwrap();
    let mut arena: Box<model::Arena> = vec![0u8; model::ARENA_LEN]
        .into_boxed_slice()
        .try_into()
        .unwrap();
    let out: model::Output = model::classify(&input, &mut arena);
    assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
    let mut again = [0.0f32; model::OUTPUT_LEN];
    model::run(&input, &mut again, &mut arena);
    assert_eq!(out, again);
    assert!(model::MACS > 0 && model::PARAMS > 0);
    // The same model, the same function (up to float rounding).
    let mut amx_arena: Box<amx::Arena> = vec![0u8; amx::ARENA_LEN].into_boxed_slice().try_into().unwrap();
    let other = amx::classify(&input, &mut amx_arena);
    let scale = out.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    assert!(out.iter().zip(&other).all(|(a, b)| (a - b).abs() <= 1e-4 * scale), "{out:?} {other:?}");
}
