#!/usr/bin/env python3
"""Side-by-side benchmark: mncc's generated code against onnxruntime and LiteRT (XNNPACK), per model.

Usage (from anywhere; see bench/README.md):

    python3 bench/run.py                      # the five models, 30 rounds
    python3 bench/run.py --models v1_0.25_128 v2_0.35_128 --rounds 10
    python3 bench/run.py --quick              # CI: one small model, few rounds, checks the outputs

Needs Python 3.8+ with numpy, onnx and onnxruntime (`pip install numpy onnx
onnxruntime`), optionally ai-edge-litert (`pip install ai-edge-litert`; without
it, or with --no-litert, LiteRT is left out) and a Rust toolchain (the crates
need nothing from the network: the bench crates depend only on the checkout's
runtime/).

For each model it:
1. makes the model if missing (bench/make_models.py, seeded) into bench/out/models/,
   and converts it to bench/out/models/<model>.tflite (bench/to_tflite.py: NHWC,
   float32, what a PyTorch -> TFLite converter writes; rewritten when it changes);
2. compiles it with `mncc compile` into a bench crate bench/out/crates/<model>/
   (its own [workspace]; `src/main.rs` is bench/bench_main.rs; release,
   codegen-units=1, lto, opt-level 3, RUSTFLAGS from --rustflags) and builds it;
3. starts the bench binary (a line protocol on stdin/stdout: `run N`, `out`,
   `threads N`, `quit`), two onnxruntime sessions (CPU, intra_op_num_threads
   1 and 2, ORT_SEQUENTIAL, ORT_ENABLE_ALL, session.force_spinning_stop) and two
   LiteRT interpreters (num_threads 1 and 2; XNNPACK, its default delegate for
   float models);
4. checks that mncc's and LiteRT's whole outputs agree with onnxruntime's;
5. warms each engine up, then for --rounds rounds runs, alternately, onnxruntime
   1 thread, LiteRT 1 thread, mncc, onnxruntime 2 threads, LiteRT 2 threads (and
   mncc 2 threads when the bench binary accepts `threads 2`), about --seconds per
   engine per round, timing every inference;
6. prints the medians over all timed inferences, and mncc's ratios to each peer
   and to the faster of the two;
7. with --layers, runs `mncc bench --layers` on each model (per-layer and
   per-kernel-type times, % of peak) and prints its per-kernel-type table.

The FMA peak (the denominator of "% of peak") is measured by bench/peak/
(single core, f32, AVX-512 where available) unless given with --peak.
Results also go to bench/out/results.json.
"""

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import make_models  # noqa: E402  (bench/make_models.py)

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    sys.exit(f"bench/run.py needs numpy, onnx and onnxruntime: pip install numpy onnx onnxruntime ({e})")

try:
    from ai_edge_litert.interpreter import Interpreter as LitertInterpreter
    import to_tflite  # bench/to_tflite.py (the TFLite schema of ai-edge-litert, and flatbuffers)
    LITERT_MISSING = None
except ImportError as e:
    to_tflite = LitertInterpreter = None
    LITERT_MISSING = str(e)

QUICK_MODEL = "v1_0.25_128"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- MACs from the ONNX graph ------------------------------------------------------------


def count_macs(model):
    """Multiply-accumulates of Conv (out_h * out_w * out_c * k_h * k_w * in_c / group), Gemm and
    MatMul (in * out per row), from the graph's inferred shapes (batch 1)."""
    m = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = shapes[n.input[1]]  # [out_c, in_c / group, kh, kw]
            out = shapes[n.output[0]]  # [1, out_c, oh, ow]
            macs += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            w = shapes[n.input[1]]
            cin, cout = (w[1], w[0]) if trans_b else (w[0], w[1])
            rows = shapes[n.input[0]][0]
            macs += rows * cin * cout
        elif n.op_type == "MatMul":
            a, b = shapes[n.input[0]], shapes[n.input[1]]
            macs += int(np.prod(a[:-1])) * a[-1] * b[-1]
    return macs


# ---- building ------------------------------------------------------------------------------


def cargo():
    return os.environ.get("CARGO", "cargo")


def build_mncc(root=ROOT, target_dir=None):
    """Builds the mncc CLI of the checkout at `root` (release; in `target_dir`, else CARGO_TARGET_DIR
    or the checkout's target/) and returns its path."""
    pkg = "mncc-cli" if (root / "compiler" / "cli" / "Cargo.toml").exists() else "mncc"
    log(f"building mncc (cargo build --release -p {pkg} in {root})")
    cmd = [cargo(), "build", "--release", "-p", pkg, "--bin", "mncc", "--message-format=json-render-diagnostics"]
    env = dict(os.environ, **({"CARGO_TARGET_DIR": str(target_dir)} if target_dir else {}))
    p = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed (in {root})")
    exe = None
    for line in p.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "mncc":
            exe = msg["executable"]
    if not exe:
        sys.exit("error: cargo did not report the mncc executable")
    return exe


def write_if_changed(path, data):
    """Keeps the mtime of unchanged files, so cargo does not rebuild."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def crate_toml(pkg, root=ROOT):
    runtime = (root / "runtime").resolve().as_posix()
    return f"""# Generated by bench/run.py: do not edit.
[package]
name = "{pkg}"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
mncc-runtime = {{ path = "{runtime}", features = ["std"] }}

# Not a member of the mncc workspace.
[workspace]

[profile.release]
opt-level = 3
codegen-units = 1
lto = true
debug = false
panic = "abort"
"""


def host_target():
    """mncc's --target for this machine: x86-64-amx where the CPU has the AMX-BF16 tiles (Linux: the
    amx_bf16 and amx_tile flags of /proc/cpuinfo), else x86-64 (mncc's default). As `-C
    target-cpu=native` does for the Rust code, it picks what this CPU runs best; the generated code still
    runs on any x86-64 CPU."""
    try:
        flags = next((ln.split(":", 1)[1].split() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("flags")), [])
    except OSError:
        flags = []
    return "x86-64-amx" if platform.machine() == "x86_64" and {"amx_bf16", "amx_tile"} <= set(flags) else "x86-64"


def build_bench_crate(name, onnx_path, mncc, out, rustflags, target, root=ROOT, tag=""):
    """mncc compile -> bench/out/crates/<tag><name>/src/model.rs; cargo build; returns the binary. The
    crate depends on the runtime of the checkout at `root` and uses its bench/bench_main.rs."""
    crate = out / "crates" / f"{tag}{name}"
    pkg = "mncc-bench-" + tag + "".join(c if c.isalnum() else "-" for c in name)
    stage = out / "crates" / f".{tag}{name}.compile"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    cmd = [mncc, "compile", "--target", target, str(onnx_path), "-o", str(stage / "model.rs")]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{p.stderr.strip()}")
    write_if_changed(crate / "Cargo.toml", crate_toml(pkg, root))
    write_if_changed(crate / "src" / "main.rs", (root / "bench" / "bench_main.rs").read_bytes())
    for f in ("model.rs", "model.weights.bin"):
        write_if_changed(crate / "src" / f, (stage / f).read_bytes())
    shutil.rmtree(stage)
    env = dict(os.environ, CARGO_TARGET_DIR=str(out / "target"), RUSTFLAGS=rustflags)
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    cmd = [cargo(), "build", "--release", "--quiet"]
    t = time.time()
    p = subprocess.run(cmd, cwd=crate, env=env, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` in {crate} failed (RUSTFLAGS={rustflags!r}):\n{p.stderr.strip()}")
    log(f"  {name}: built {crate} in {time.time() - t:.1f} s")
    return out / "target" / "release" / pkg


def measure_peak(out, rustflags, seconds):
    """Builds and runs bench/peak; returns (peak GFLOP/s, its report)."""
    flags = rustflags
    if platform.machine().lower() in ("x86_64", "amd64") and "prefer-256-bit" not in flags:
        flags += " -C target-feature=-prefer-256-bit"  # let LLVM use zmm (see bench/peak/src/main.rs)
    env = dict(os.environ, CARGO_TARGET_DIR=str(out / "target"), RUSTFLAGS=flags)
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    p = subprocess.run([cargo(), "build", "--release", "--quiet"], cwd=HERE / "peak", env=env,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"building bench/peak failed:\n{p.stderr}")
    exe = out / "target" / "release" / "mncc-bench-peak"
    text = subprocess.run([str(exe), str(seconds)], stdout=subprocess.PIPE, text=True, check=True).stdout
    peak = float(text.strip().splitlines()[-1].split()[1])
    return peak, text


# ---- engines -------------------------------------------------------------------------------


class Mncc:
    """A running bench binary."""

    def __init__(self, exe, input_bin):
        self.p = subprocess.Popen([str(exe), str(input_bin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)
        words = self._read().split()
        if not words or words[0] != "ready":
            raise RuntimeError(f"bench binary {exe}: unexpected greeting {' '.join(words)!r}")
        self.name, self.macs = words[1], int(words[2])
        self.threads = 1

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"the bench binary exited (status {self.p.wait()})")
        if line.startswith("error"):
            raise RuntimeError(f"bench binary: {line.strip()}")
        return line

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self._read()

    def set_threads(self, n):
        if self.threads == n:
            return True
        ok = self.ask(f"threads {n}").strip() == "ok"
        if ok:
            self.threads = n
        return ok

    def output(self):
        return np.array([float(v) for v in self.ask("out").split()], dtype=np.float32)

    def run(self, n):
        """n inferences; their times in seconds (measured inside the process)."""
        return [int(t) * 1e-9 for t in self.ask(f"run {n}").split()]

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.p.wait(timeout=30)


def time_each(call, n):
    """Seconds of each of `n` calls of `call()`, timed one by one (how the Python-side peers are timed)."""
    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        call()
        times.append((clock() - t) * 1e-9)
    return times


class Ort:
    """An onnxruntime session, run with I/O binding on preallocated buffers."""

    def __init__(self, path, threads, x):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The pool's workers still spin during a Run, but stop when it returns: otherwise the
        # 2-thread session's idle worker keeps spinning for tens of ms (measured: 34 ms of CPU in
        # a 200 ms pause after a batch), stealing a core from whichever engine runs next.
        so.add_session_config_entry("session.force_spinning_stop", "1")
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp, outp = self.sess.get_inputs()[0], self.sess.get_outputs()[0]
        self.x = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x))
        self.y = np.zeros([d if isinstance(d, int) else 1 for d in outp.shape], dtype=np.float32)
        self.io = self.sess.io_binding()
        self.io.bind_ortvalue_input(inp.name, self.x)
        self.y_value = ort.OrtValue.ortvalue_from_numpy(self.y)  # shares self.y's memory
        self.io.bind_ortvalue_output(outp.name, self.y_value)

    def output(self):
        self.sess.run_with_iobinding(self.io)
        return self.y.reshape(-1).copy()

    def run(self, n):
        return time_each(functools.partial(self.sess.run_with_iobinding, self.io), n)


class Litert:
    """A LiteRT interpreter on the converted model (XNNPACK: the default delegate for float
    models), its input set once; each invoke() is timed on its own."""

    def __init__(self, path, threads, x):
        self.interp = LitertInterpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()  # applies the default delegate (XNNPACK)
        inp, outp = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 2, 3, 1))  # NCHW -> NHWC
        if list(inp["shape"]) != list(x.shape):
            raise RuntimeError(f"{path}: input shape {list(inp['shape'])}, expected {list(x.shape)}")
        self.interp.set_tensor(inp["index"], x)
        self.out_index = outp["index"]
        self.xnnpack = self._whole_graph_delegated(inp["index"], outp["index"])

    def _whole_graph_delegated(self, inp, outp):
        """True when one delegate node (XNNPACK's; there is no other here) runs the whole graph:
        from the model's input to its output. None if the (private) node API is unavailable."""
        try:
            ops = self.interp._get_ops_details()
        except Exception:  # noqa: BLE001 (a private API: report "unknown")
            return None
        delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
        return len(delegates) == 1 and inp in list(delegates[0]["inputs"]) \
            and list(delegates[0]["outputs"]) == [outp]

    def output(self):
        self.interp.invoke()
        return self.interp.get_tensor(self.out_index).reshape(-1).copy()

    def run(self, n):
        return time_each(self.interp.invoke, n)


def litert_version():
    try:
        from importlib.metadata import version
        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return "?"


def convert_tflite(name, onnx_path, out):
    """bench/out/models/<name>.tflite from the .onnx (rewritten only when its bytes change);
    returns its path, or None (with a message) when the converter does not handle the model."""
    path = out / "models" / f"{name}.tflite"
    try:
        data = to_tflite.convert_file(onnx_path)
    except Exception as e:  # noqa: BLE001 (ConversionError: an op or attribute it does not handle)
        log(f"warning: {name}: cannot convert to TFLite ({type(e).__name__}: {e}): LiteRT left out for this model")
        return None
    if write_if_changed(path, data):
        log(f"  {name}: converted to {path} (bench/to_tflite.py)")
    return path


# ---- the benchmark -------------------------------------------------------------------------


def model_files(spec, out):
    """(name, onnx path, input .npy, input .bin) for a model name of make_models.MODELS or a
    path to an .onnx file (float NCHW input; a seeded N(0, 1) input is made for it)."""
    models_dir = out / "models"
    if spec in make_models.MODELS:
        name = spec
        onnx_path = models_dir / f"{name}.onnx"
        files = [onnx_path, models_dir / f"{name}.input.npy", models_dir / f"{name}.input.bin"]
        if not all(f.exists() for f in files):
            log(f"making {name} (bench/make_models.py)")
            cmd = [sys.executable, str(HERE / "make_models.py"), "--out", str(models_dir), "--models", name]
            subprocess.run(cmd, check=True)
        return name, onnx_path, files[1], files[2]
    path = Path(spec).resolve()
    if not path.exists():
        sys.exit(f"error: `{spec}` is neither a model name ({', '.join(make_models.MODELS)}) nor a file")
    name = path.parent.name if path.stem == "model" else path.stem  # tests/fixtures/onnx/<case>/model.onnx
    m = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in m.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    npy, raw = models_dir / f"{name}.input.npy", models_dir / f"{name}.input.bin"
    models_dir.mkdir(parents=True, exist_ok=True)
    np.save(npy, x)
    raw.write_bytes(x.astype("<f4").tobytes())
    return name, path, npy, raw


def pct(v, q):
    return float(np.percentile(v, q)) if v else float("nan")


def bench_model(name, onnx_path, npy, raw, exe, tflite, args, base_exe=None):
    model = onnx.load(str(onnx_path))
    macs = count_macs(model)
    x = np.load(npy)
    engines = {}
    mncc = Mncc(exe, raw)
    base = Mncc(base_exe, raw) if base_exe else None
    try:
        if mncc.macs != macs:
            log(f"  note: {name}: mncc counts {mncc.macs} MACs, the ONNX graph {macs}")
        # HOOK (mncc 2-thread mode): measured when the bench binary accepts `threads 2`.
        mncc2 = mncc.set_threads(2)
        mncc.set_threads(1)
        # The order of a round: ort 1t, litert 1t, mncc 1t, ort 2t, litert 2t, mncc 2t.
        for t in (1, 2):
            engines[f"ort{t}"] = Ort(onnx_path, t, x)
            if tflite is not None:
                engines[f"litert{t}"] = Litert(tflite, t, x)
            if t == 1 or mncc2:
                engines[f"mncc{t}"] = mncc
            if base is not None and (t == 1 or base.set_threads(2)):
                base.set_threads(1)
                engines[f"base{t}"] = base
        xnnpack = {k: engines[k].xnnpack for k in ("litert1", "litert2") if k in engines}
        if any(v is False for v in xnnpack.values()):
            log(f"  warning: {name}: XNNPACK does not run the whole LiteRT graph ({xnnpack})")

        def run(key, n):
            if key.startswith(("mncc", "base")):
                engines[key].set_threads(int(key[-1]))
            return engines[key].run(n)

        # Correctness: the whole output against onnxruntime's (1 thread).
        ref = engines["ort1"].output().astype(np.float64)
        got = mncc.output().astype(np.float64)
        ort2 = engines["ort2"].output().astype(np.float64)
        if got.shape != ref.shape:
            raise RuntimeError(f"{name}: mncc output has {got.size} values, onnxruntime {ref.size}")

        def max_diff(y):
            return float(np.max(np.abs(y - ref))) if np.all(np.isfinite(y)) else float("inf")

        diff = max_diff(got)
        tol = 1e-4 * max(1.0, float(np.max(np.abs(ref))))
        diff_ort2 = float(np.max(np.abs(ort2 - ref)))
        same_top1 = int(np.argmax(got)) == int(np.argmax(ref))
        litert_diff = {}
        for k in ("litert1", "litert2"):
            if k in engines:
                y = engines[k].output().astype(np.float64)
                if y.shape != ref.shape:
                    raise RuntimeError(f"{name}: LiteRT output has {y.size} values, onnxruntime {ref.size}")
                litert_diff[k] = max_diff(y)

        # Warm-up, and inferences per engine per round from the warm-up latency.
        per_round = {}
        for key in engines:
            warm = run(key, args.warmup)
            lat = statistics.median(warm)
            per_round[key] = max(1, min(args.max_per_round, round(args.seconds / max(lat, 1e-6))))
        times = {key: [] for key in engines}
        round_medians = {key: [] for key in engines}
        t0 = time.time()
        for r in range(args.rounds):
            for key in engines:
                got_times = run(key, per_round[key])
                times[key] += got_times
                round_medians[key].append(statistics.median(got_times))
            if args.verbose:
                log(f"    round {r + 1}/{args.rounds}: " + ", ".join(
                    f"{k} {statistics.median(v) * 1e3:.3f} ms" for k, v in times.items()))
        elapsed = time.time() - t0
        base_same = None if base is None else bool(np.array_equal(base.output(), mncc.output()))
    finally:
        mncc.close()
        if base is not None:
            base.close()

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}

    def round_ratio(a, *peers):
        """Median over rounds of a's median / the smallest of the peers' medians in that round:
        they ran back to back, so a phase of the machine (they last seconds) mostly hits all."""
        if a not in round_medians or any(p not in round_medians for p in peers):
            return None
        return statistics.median(x / min(ys) for x, *ys in zip(round_medians[a], *(round_medians[p] for p in peers)))

    def ratio(a, *peers):
        """a's median over the smallest of the peers' medians (None if one was not measured)."""
        if a not in med or any(p not in med for p in peers):
            return None
        return med[a] / min(med[p] for p in peers)

    def peers(t):
        return [k for k in (f"ort{t}", f"litert{t}") if k in med]

    def best_peer(t):
        return min(peers(t), key=lambda k: med[k])[:-1] if peers(t) else None

    res = {
        "model": name,
        "macs": macs,
        "mncc_macs": mncc.macs,
        "median_ms": med,
        "p25_ms": {k: pct(v, 25) * 1e3 for k, v in times.items()},
        "p75_ms": {k: pct(v, 75) * 1e3 for k, v in times.items()},
        "min_ms": {k: min(v) * 1e3 for k, v in times.items()},
        "timed_runs": {k: len(v) for k, v in times.items()},
        "per_round": per_round,
        "rounds": args.rounds,
        "seconds_timed": elapsed,
        "max_abs_diff": diff,
        "tolerance": tol,
        "ok": diff <= tol,
        "same_top1": same_top1,
        "ort2_vs_ort1_max_abs_diff": diff_ort2,
        "litert_max_abs_diff": max(litert_diff.values()) if litert_diff else None,
        "litert_max_abs_diff_by_threads": litert_diff or None,
        "litert_ok": all(d <= tol for d in litert_diff.values()),
        "litert_xnnpack_whole_graph": xnnpack or None,
        "round_medians_ms": {k: [x * 1e3 for x in v] for k, v in round_medians.items()},
        "mncc_gflops": 2 * macs / (med["mncc1"] * 1e-3) / 1e9,
        "baseline_output_identical": base_same,
    }
    # mncc / ort (ratio_<t>t), mncc / litert (ratio_litert_<t>t), mncc / the faster of the two
    # (ratio_best_<t>t; best_peer_<t>t names it, by medians); round_ratio_*: per round, then the
    # median over rounds.
    for t in (1, 2):
        for tag, vs in (("", [f"ort{t}"]), ("litert_", [f"litert{t}"]), ("best_", peers(t))):
            res[f"ratio_{tag}{t}t"] = ratio(f"mncc{t}", *vs)
            res[f"round_ratio_{tag}{t}t"] = round_ratio(f"mncc{t}", *vs)
        res[f"best_peer_{t}t"] = best_peer(t)
        res[f"ratio_base_{t}t"] = ratio(f"mncc{t}", f"base{t}")
        res[f"round_ratio_base_{t}t"] = round_ratio(f"mncc{t}", f"base{t}")
    return res


def fmt_baseline(results, baseline):
    """mncc against the baseline checkout's mncc, per thread count."""
    rows = [f"| model | mncc 1t ms | baseline 1t ms | mncc/baseline 1t | mncc 2t ms | baseline 2t ms | "
            f"mncc/baseline 2t | outputs |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["median_ms"]
        cells = [r["model"]]
        for t in (1, 2):
            a, b = r.get(f"ratio_base_{t}t"), r.get(f"round_ratio_base_{t}t")
            cells += [f"{m[f'mncc{t}']:.3f}" if f"mncc{t}" in m else "n/a",
                      f"{m[f'base{t}']:.3f}" if f"base{t}" in m else "n/a",
                      "n/a" if a is None else f"{a:.3f} ({b:.3f})"]
        cells.append("bit-identical" if r["baseline_output_identical"] else "DIFFER")
        rows.append("| " + " | ".join(cells) + " |")
    return f"mncc against the baseline {baseline} (ratio of medians, and median of per-round ratios):\n\n" + \
        "\n".join(rows)


def fmt_table(results, peak):
    """One row per model. A ratio cell is `ratio of the medians (round ratio)`."""
    head = ["model", "MACs"]
    for t in (1, 2):
        head += [f"ort {t}t ms", f"litert {t}t ms", f"mncc {t}t ms", f"mncc/ort {t}t", f"mncc/litert {t}t",
                 f"mncc/best {t}t"]
    head += ["mncc GFLOP/s", "% of peak", "max abs diff vs ort", "litert max abs diff vs ort"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def ms(m, k):
        return f"{m[k]:.3f}" if k in m else "n/a"

    def ratio(r, suffix):
        a, b = r.get(f"ratio_{suffix}"), r.get(f"round_ratio_{suffix}")
        return "n/a" if a is None else f"{a:.2f} ({b:.2f})" if b is not None else f"{a:.2f}"

    for r in results:
        m = r["median_ms"]
        cells = [r["model"], f"{r['macs'] / 1e6:.1f}M"]
        for t in (1, 2):
            cells += [ms(m, f"ort{t}"), ms(m, f"litert{t}"), ms(m, f"mncc{t}"), ratio(r, f"{t}t"),
                      ratio(r, f"litert_{t}t"), ratio(r, f"best_{t}t")]
        pk = f"{100 * r['mncc_gflops'] / peak:.1f}%" if peak else "n/a"
        ld = r.get("litert_max_abs_diff")
        cells += [f"{r['mncc_gflops']:.1f}", pk, f"{r['max_abs_diff']:.2e}" + ("" if r["ok"] else " **FAIL**"),
                  "n/a" if ld is None else f"{ld:.2e}" + ("" if r["litert_ok"] else " **FAIL**")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def fmt_spread(results):
    rows = ["| model | engine | timed runs | per round | min ms | p25 ms | median ms | p75 ms |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for k in r["median_ms"]:
            rows.append(f"| {r['model']} | {k} | {r['timed_runs'][k]} | {r['per_round'][k]} | "
                        f"{r['min_ms'][k]:.3f} | {r['p25_ms'][k]:.3f} | {r['median_ms'][k]:.3f} | "
                        f"{r['p75_ms'][k]:.3f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(make_models.MODELS), metavar="MODEL",
                    help=f"model names ({' '.join(make_models.MODELS)}; default all) or paths to .onnx "
                         "files with one float NCHW input")
    ap.add_argument("--rounds", type=int, default=30, help="alternation rounds (default 30)")
    ap.add_argument("--seconds", type=float, default=0.2,
                    help="approximate seconds per engine per round (default 0.2; at least 1 inference)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed inferences per engine first (default 5)")
    ap.add_argument("--max-per-round", type=int, default=1000, help="cap on inferences per engine per round")
    ap.add_argument("--rustflags", default="-C target-cpu=native",
                    help="RUSTFLAGS of the bench crates (default '-C target-cpu=native')")
    ap.add_argument("--peak", type=float, default=None,
                    help="single-core FMA peak in GFLOP/s (default: measure it with bench/peak)")
    ap.add_argument("--peak-rustflags", default="-C target-cpu=native",
                    help="RUSTFLAGS of bench/peak (default '-C target-cpu=native', plus "
                         "'-C target-feature=-prefer-256-bit' on x86-64): it measures the machine, "
                         "whatever --rustflags the bench crates get")
    ap.add_argument("--peak-seconds", type=float, default=0.4, help="seconds per bench/peak configuration")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="work directory (default bench/out)")
    ap.add_argument("--quick", action="store_true",
                    help=f"CI mode: {QUICK_MODEL} only, 5 rounds of about 0.05 s, short peak measurement; "
                         "exits 1 if the outputs disagree (as every mode does)")
    ap.add_argument("--layers", action="store_true",
                    help="also run `mncc bench --layers` on each model (per-layer and per-kernel-type times "
                         "and %% of peak; builds its own harness crate, about 30 s per model)")
    ap.add_argument("--layer-seconds", type=float, default=3.0, help="--seconds of `mncc bench --layers`")
    ap.add_argument("--no-litert", action="store_true",
                    help="leave LiteRT out (it is also left out, with a warning, when ai_edge_litert cannot be "
                         "imported)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print the running medians after each round")
    ap.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                    help="another mncc checkout (e.g. `git worktree add /tmp/base HEAD~5`): its mncc and runtime "
                         "build a second bench crate per model, alternated with this one in every round; prints "
                         "mncc / baseline per thread count, and whether the outputs are bit-identical")
    ap.add_argument("--target", default=None,
                    help="mncc's --target for the bench crates (default: x86-64-amx where the CPU has AMX-BF16, "
                         "else x86-64)")
    args = ap.parse_args()
    if args.target is None:
        args.target = host_target()
    if args.quick:
        args.models, args.rounds, args.seconds, args.peak_seconds = [QUICK_MODEL], 5, 0.05, 0.2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    specs = [model_files(m, out) for m in args.models]
    use_litert = not args.no_litert and LITERT_MISSING is None
    if not args.no_litert and LITERT_MISSING is not None:
        log(f"warning: LiteRT left out: {LITERT_MISSING} (pip install ai-edge-litert; --no-litert leaves it "
            "out without this warning)")
    tflites, failed_convert = {}, []
    if use_litert:
        log("converting the models to TFLite (bench/to_tflite.py)")
        for name, onnx_path, _, _ in specs:
            tflites[name] = convert_tflite(name, onnx_path, out)
            if tflites[name] is None and name in make_models.MODELS:
                failed_convert.append(name)  # the converter must handle every model of make_models.py
    mncc = build_mncc()
    log(f"compiling and building the bench crates (--target {args.target}, RUSTFLAGS={args.rustflags!r})")
    exes, failed = {}, []
    for name, onnx_path, _, _ in specs:
        try:
            exes[name] = build_bench_crate(name, onnx_path, mncc, out, args.rustflags, args.target)
        except RuntimeError as e:
            log(f"error: {name}: {e}")
            failed.append(name)
    base_exes = {}
    if args.baseline is not None:
        broot = args.baseline.resolve()
        base_mncc = build_mncc(broot, out / "baseline-target")
        for name, onnx_path, _, _ in specs:
            if name in exes:
                base_exes[name] = build_bench_crate(name, onnx_path, base_mncc, out, args.rustflags, args.target,
                                                    root=broot, tag="base-")
    if args.peak is None:
        log("measuring the FMA peak (bench/peak)")
        peak, peak_report = measure_peak(out, args.peak_rustflags, args.peak_seconds)
    else:
        peak, peak_report = args.peak, "given with --peak\n"
    t_built = time.time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    results = []
    for name, onnx_path, npy, raw in specs:
        if name not in exes:
            continue
        log(f"benchmarking {name}")
        r = bench_model(name, onnx_path, npy, raw, exes[name], tflites.get(name), args, base_exes.get(name))
        results.append(r)
        m = r["median_ms"]
        lt = f", litert {r['litert_max_abs_diff']:.2e}" if r["litert_max_abs_diff"] is not None else ""
        log("  " + ", ".join(f"{k[:-1]} {k[-1]}t {v:.3f} ms" for k, v in m.items()) +
            f"; max abs diff vs ort: mncc {r['max_abs_diff']:.2e}{lt} (tolerance {r['tolerance']:.1e}); "
            f"{r['seconds_timed']:.1f} s")

    print(f"\nFMA peak (1 core, f32): {peak:.1f} GFLOP/s")
    if load_start is not None:
        load_end = os.getloadavg()[0]
        busy = " (busy machine: medians include waiting for a core; see the spread table)" \
            if max(load_start, load_end) > 1.0 else ""
        print(f"load average {load_start:.1f} at the start of the benchmark, {load_end:.1f} at the end{busy}")
    if use_litert:
        xnn = [v for r in results for v in (r["litert_xnnpack_whole_graph"] or {}).values()]
        xnn = "XNNPACK on the whole graph" if xnn and all(xnn) else \
            "XNNPACK not confirmed on the whole graph (see results.json)" if xnn else "no model converted"
        lt = f"LiteRT {litert_version()} ({xnn})"
    else:
        lt = "LiteRT left out"
    print(f"onnxruntime {ort.__version__}; {lt}; rounds {args.rounds}, about {args.seconds} s per engine per round; "
          f"mncc --target {args.target}; RUSTFLAGS {args.rustflags!r}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("ratio cells: mncc's median over the peer's (its median of per-round ratios); best: the faster peer\n")
    print(fmt_table(results, peak))
    if args.baseline is not None:
        print()
        print(fmt_baseline(results, args.baseline))
    print("\nSpread (all timed inferences):\n")
    print(fmt_spread(results))

    layer_reports, status_layers = {}, 0
    if args.layers:
        for name, onnx_path, _, _ in specs:
            if name not in exes:
                continue
            cmd = [mncc, "bench", "--layers", "--seconds", str(args.layer_seconds), "--peak", f"{peak:.1f}",
                   "--target", args.target, str(onnx_path)]
            log(f"per-layer times of {name}: {' '.join(cmd)}")
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                log(f"error: `{' '.join(cmd)}` failed:\n{p.stderr.strip()}")
                status_layers = 1
                continue
            layer_reports[name] = p.stdout
            lines = p.stdout.splitlines()
            head = [ln for ln in lines if ln.startswith(("median", "GFLOP/s"))]
            start = next((i for i, ln in enumerate(lines) if ln.startswith("| kernel type")), None)
            print(f"\n{name}, per kernel type (`mncc bench --layers`; {'; '.join(' '.join(h.split()) for h in head)}):\n")
            print("\n".join(lines[start:] if start is not None else lines))

    print(f"\nbuild {t_built - t_start:.0f} s, benchmark {time.time() - t_built:.0f} s, "
          f"total {time.time() - t_start:.0f} s")
    (out / "results.json").write_text(json.dumps({
        "peak_gflops": peak, "peak_report": peak_report, "onnxruntime": ort.__version__,
        "litert": litert_version() if use_litert else None,
        "rustflags": args.rustflags, "target": args.target, "rounds": args.rounds, "seconds": args.seconds,
        "results": results, "failed_to_build": failed, "failed_to_convert": failed_convert,
        "mncc_bench_layers": layer_reports}, indent=2) + "\n")

    status = status_layers
    for r in results:
        if not r["ok"]:
            log(f"FAIL: {r['model']}: mncc's output differs from onnxruntime's by {r['max_abs_diff']:.3e} "
                f"> {r['tolerance']:.3e} (1e-4 * max(1, max|ort|))")
            status = 1
        if not r["litert_ok"]:
            log(f"FAIL: {r['model']}: LiteRT's output differs from onnxruntime's by {r['litert_max_abs_diff']:.3e} "
                f"> {r['tolerance']:.3e} (1e-4 * max(1, max|ort|))")
            status = 1
    if failed_convert:
        log(f"FAIL: bench/to_tflite.py could not convert {', '.join(failed_convert)}")
        status = 1
    if failed:
        log(f"FAIL: could not build {', '.join(failed)}")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
