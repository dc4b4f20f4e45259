// A user crate: the generated items compile without warnings and run.
#![deny(warnings)]

mod model {
    mncc_runtime::mobilenet!("models/tiny.toml");
}

// Another target's schedule (the AMX tiles where the CPU has them).
mod amx {
    mncc_runtime::mobilenet!("models/tiny.toml", target = "x86-64-amx");
}

// Three images per run.
mod batch {
    mncc_runtime::mobilenet!("models/tiny.toml", batch = 3);
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
    // A batch: each image's output is the single-image run's, bit for bit,
    // in the same arena.
    assert_eq!(batch::BATCH, 3);
    assert_eq!(batch::INPUT_SHAPE, [3, 96, 96, 3]);
    assert_eq!(batch::IMAGE_INPUT_LEN, model::INPUT_LEN);
    assert_eq!(batch::ARENA_LEN, model::ARENA_LEN);
    let mut images = vec![0u8; batch::INPUT_LEN];
    for (k, v) in images.iter_mut().enumerate() {
        *v = (k * 13 % 251) as u8;
    }
    let images: Box<batch::Input> = images.into_boxed_slice().try_into().unwrap();
    let mut outs = [0.0f32; batch::OUTPUT_LEN];
    let mut batch_arena: Box<batch::Arena> = vec![0u8; batch::ARENA_LEN].into_boxed_slice().try_into().unwrap();
    batch::run(&images, &mut outs, &mut batch_arena);
    for i in 0..batch::BATCH {
        let one: &model::Input = images[i * model::INPUT_LEN..][..model::INPUT_LEN].try_into().unwrap();
        let want = model::classify(one, &mut arena);
        assert_eq!(&outs[i * model::OUTPUT_LEN..][..model::OUTPUT_LEN], &want[..], "image {i}");
    }
}
