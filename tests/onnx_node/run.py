#!/usr/bin/env python3
"""ONNX backend node tests through `mncc verify`.

The `onnx` package defines one small model per operator case (the "node
tests": onnx/backend/test/data/node/<test>/{model.onnx, test_data_set_0/
input_*.pb, output_*.pb}). This script runs every one that uses only
operators mncc supports (the candidates) through the mncc CLI:

  * every graph input but the first becomes an initializer holding its
    test_data_set_0 value (mncc compiles weights in);
  * input_0 becomes X.npy and output_0 Y.npy;
  * `mncc verify model.onnx --input X.npy --expect Y.npy` compiles the model,
    builds the generated code and compares its whole output with Y.

Each candidate is PASS, EXCLUDED (mncc rejects the model, with mncc's first
`error:` line as the reason) or FAIL (accepted but wrong: output mismatch,
internal compiler error, generated code that does not build or run, timeout).

Modes:
  run.py             (CI) run every candidate and compare with expected.txt:
                     exit 1 if a test listed as PASS does not pass; FAIL tests
                     are listed but not required; other changes are reported.
                     EXCLUDED tests stop before any build, so this costs
                     little more than the PASS list.
  run.py --pass-only run only the tests listed as PASS
  run.py --update    run every candidate and rewrite tests/onnx_node/expected.txt
  run.py NAME...     run only these tests and print their status
  run.py --list      list the candidates

onnx wheels up to 1.18 at least shipped the node test data; 1.23.2's
ships only the Python generators (onnx.backend.test.case.node), so when the
data folder is missing from the installed package it is generated once, the
way onnx's generate-data tool wrote it (the generators are seeded), into
target/onnx-node-data/onnx-<version>/node. --data DIR uses another copy.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.txt"

# The operators of the default domain mncc's ONNX front end accepts: read
# from its registry (compiler/src/onnx/ops/*.rs), the one list there is.
SUPPORTED = {
    name
    for f in sorted((ROOT / "compiler" / "src" / "onnx" / "ops").glob("*.rs"))
    for name in re.findall(r'name: "(\w+)",\s*domain: "",', f.read_text())
}
assert {"Conv", "Gemm", "Softmax"} <= SUPPORTED, f"no operators found in the registry: {SUPPORTED}"

# Y.npy: mncc reads f32, f64 and u8 arrays.
NPY_OK = {np.dtype("float32"), np.dtype("float64"), np.dtype("uint8")}


# ---------------------------------------------------------------- test data


def find_node_data(explicit: str | None) -> Path:
    """The node test folder: --data, the installed package's, or generated."""
    if explicit:
        p = Path(explicit)
        if not p.is_dir():
            sys.exit(f"error: --data {p}: not a directory")
        return p
    shipped = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    if shipped.is_dir() and any(shipped.iterdir()):
        return shipped
    cache = ROOT / "target" / "onnx-node-data" / f"onnx-{onnx.__version__}" / "node"
    if not (cache / ".complete").exists():
        generate_node_data(cache)
    return cache


def generate_node_data(out: Path) -> None:
    """Writes the node tests the way onnx's generate-data used to (seeded generators)."""
    import shutil
    import warnings

    print(f"onnx {onnx.__version__} ships no node test data; generating it into {out} ...", flush=True)
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import onnx.backend.test.case.node as node_cases

        cases = node_cases.collect_testcases()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for case in cases:
        d = out / case.name
        d.mkdir()
        (d / "model.onnx").write_bytes(case.model.SerializeToString())
        for k, (inputs, outputs) in enumerate(case.data_sets):
            ds = d / f"test_data_set_{k}"
            ds.mkdir()
            for kind, values, infos in (
                ("input", inputs, case.model.graph.input),
                ("output", outputs, case.model.graph.output),
            ):
                for j, v in enumerate(values):
                    info = infos[j]
                    if info.type.HasField("tensor_type"):
                        t_ = v if isinstance(v, onnx.TensorProto) else numpy_helper.from_array(v, info.name)
                    elif info.type.HasField("sequence_type"):
                        t_ = numpy_helper.from_list(v, info.name)
                    elif info.type.HasField("optional_type"):
                        t_ = numpy_helper.from_optional(v, info.name)
                    elif info.type.HasField("map_type"):
                        t_ = numpy_helper.from_dict(v, info.name)
                    else:
                        continue
                    (ds / f"{kind}_{j}.pb").write_bytes(t_.SerializeToString())
    (out / ".complete").write_text(f"onnx {onnx.__version__}, {len(cases)} node tests\n")
    print(f"generated {len(cases)} node tests in {time.time() - t:.0f} s", flush=True)


def all_ops(graph: onnx.GraphProto):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_ops(a.g)
            for g in a.graphs:
                yield from all_ops(g)


def candidates(data: Path) -> dict[str, Path]:
    """Tests whose model uses only operators mncc supports."""
    out = {}
    for d in sorted(data.iterdir()):
        m = d / "model.onnx"
        if not m.is_file():
            continue
        model = onnx.load(str(m), load_external_data=False)
        if model.functions:
            continue
        if all(n.domain in ("", "ai.onnx") and n.op_type in SUPPORTED for n in all_ops(model.graph)):
            out[d.name] = d
    return out


# ---------------------------------------------------------------- one test


def read_tensor(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def prepare(test_dir: Path, work: Path) -> tuple[list[str] | None, str | None]:
    """Writes model.onnx (inputs 1.. folded), X.npy and Y.npy into `work`.

    Returns (the mncc verify arguments, None) or (None, the exclusion reason)."""
    model = onnx.load(str(test_dir / "model.onnx"))
    g = model.graph
    ds = test_dir / "test_data_set_0"
    if len(g.output) != 1:
        return None, "several outputs"
    inits = {t.name for t in g.initializer}
    real_inputs = [i for i in g.input if i.name not in inits]
    for j, info in enumerate(g.input):
        if j == 0 or info.name in inits:
            continue
        if not info.type.HasField("tensor_type"):
            kind = info.type.WhichOneof("value") or "untyped"
            return None, f"input {j} `{info.name}` has {kind.replace('_type', '')} type, not a tensor"
        t = onnx.TensorProto()
        t.ParseFromString((ds / f"input_{j}.pb").read_bytes())
        t.name = info.name
        g.initializer.append(t)
    if model.ir_version >= 4:
        keep = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
        del g.input[:]
        g.input.extend(keep)
    onnx.save(model, str(work / "model.onnx"))
    args = ["verify", str(work / "model.onnx")]
    if real_inputs and (ds / "input_0.pb").exists():
        if not g.input[0].type.HasField("tensor_type"):
            kind = g.input[0].type.WhichOneof("value") or "untyped"
            return None, f"input 0 `{g.input[0].name}` has {kind.replace('_type', '')} type, not a tensor"
        np.save(work / "X.npy", read_tensor(ds / "input_0.pb"))
        args += ["--input", str(work / "X.npy")]
    if not g.output[0].type.HasField("tensor_type"):
        return None, "the output is not a tensor"
    y = read_tensor(ds / "output_0.pb")
    if y.dtype not in NPY_OK:
        # mncc's output is f32; compare numerically (ints, bools, f16 as f64).
        y = y.astype(np.float64)
    np.save(work / "Y.npy", y)
    args += ["--expect", str(work / "Y.npy")]
    return args, None


_procs: set[subprocess.Popen] = set()
_procs_lock = threading.Lock()


def run_mncc(mncc: str, args: list[str], timeout: float, env: dict) -> tuple[int | None, str, str]:
    """Runs mncc in its own process group; kills that group on timeout."""
    p = subprocess.Popen(
        [mncc, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    with _procs_lock:
        _procs.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return None, out, err
    finally:
        with _procs_lock:
            _procs.discard(p)


def one_line(s: str, limit: int = 300) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def classify(rc: int | None, out: str, err: str, work: Path, timeout: float) -> tuple[str, str]:
    """(PASS | EXCLUDED | FAIL, reason)."""
    def clean(s: str) -> str:
        s = s.replace(str(work) + os.sep, "").replace(str(work), "<tmp>")
        s = re.sub(r"^model\.onnx: ", "", s)
        return one_line(re.sub(r"mncc_harness_[0-9a-f]{16}", "mncc_harness_<hash>", s))

    if rc is None:
        return "FAIL", f"timeout: mncc verify took more than {timeout:g} s"
    if rc == 0:
        return "PASS", ""
    m = re.search(r"FAILED: max abs error (\S+) exceeds the tolerance (\S+)", out)
    if m:
        top = re.search(r"top-1\s+generated (\d+) / reference (\d+)", out)
        extra = f" (top-1 {top.group(1)} vs {top.group(2)})" if top else ""
        return "FAIL", f"output mismatch: max abs error {m.group(1)} > tolerance {m.group(2)}{extra}"
    lines = err.splitlines()
    errors = [l[len("error: "):] for l in lines if l.startswith("error: ")]
    # cargo's closing "could not compile `crate` ... due to N previous errors" adds nothing.
    errors = [e for e in errors if not e.startswith("could not compile")] or errors
    built = any(l.startswith("building the generated code") for l in lines)
    if not errors:
        return "FAIL", clean(f"mncc exited with status {rc} and no error line: {err[-300:]}")
    first = errors[0]
    if "internal compiler error" in first:
        return "FAIL", clean(first)
    if built:
        # The model was accepted: a failure to build or run the generated code is a bug.
        return "FAIL", clean(f"after compiling: {' '.join(errors)}")
    return "EXCLUDED", clean(first)


def run_test(name: str, test_dir: Path, mncc: str, timeout: float, env: dict) -> tuple[str, str, float]:
    t = time.time()
    with tempfile.TemporaryDirectory(prefix="mncc-node-") as tmp:
        work = Path(tmp)
        try:
            args, reason = prepare(test_dir, work)
        except Exception as e:  # noqa: BLE001 - malformed test data is reported, not fatal
            return "EXCLUDED", one_line(f"cannot prepare the test: {type(e).__name__}: {e}"), time.time() - t
        if args is None:
            return "EXCLUDED", reason, time.time() - t
        rc, out, err = run_mncc(mncc, args, timeout, env)
        status, why = classify(rc, out, err, work, timeout)
        return status, why, time.time() - t


# ---------------------------------------------------------------- expected.txt


def read_expected() -> dict[str, tuple[str, str]]:
    exp = {}
    if not EXPECTED.exists():
        return exp
    for line in EXPECTED.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        status, rest = line.split(" ", 1)
        name, _, reason = rest.partition(":")
        exp[name.strip()] = (status, reason.strip())
    return exp


def expected_onnx_version() -> str | None:
    if EXPECTED.exists():
        m = re.search(r"onnx (\S+)", EXPECTED.read_text().split("\n", 1)[0])
        return m.group(1) if m else None
    return None


def write_expected(results: dict[str, tuple[str, str]], data: Path) -> None:
    counts = summarize(results)
    head = [
        f"# ONNX backend node tests through `mncc verify`: produced with onnx {onnx.__version__}"
        f" ({'data shipped with the package' if 'site-packages' in str(data) or 'dist-packages' in str(data) else 'data generated from onnx.backend.test.case.node'}).",
        "# Candidates: tests whose model uses only operators mncc supports. Regenerate with",
        "#   cargo build --release -p mncc-cli && python3 tests/onnx_node/run.py --update",
        "# PASS: verified; EXCLUDED: mncc rejects the model (its first error line);",
        "# FAIL: accepted but wrong (a bug to fix; CI lists these but does not require them).",
        f"# {counts}",
    ]
    body = []
    for name in sorted(results):
        status, reason = results[name]
        body.append(f"PASS {name}" if status == "PASS" else f"{status} {name}: {reason}")
    EXPECTED.write_text("\n".join(head + body) + "\n")


def category(reason: str) -> str:
    """A short category of an exclusion reason, for the summary."""
    rules = [
        (r"^several outputs", "several outputs"),
        (r"opset \d+ is not supported", "opset not supported"),
        (r"the model has \d+ inputs", "several non-constant inputs"),
        (r"has \d+ dims; an image input has 4", "input is neither 4-D nor 2-D"),
        (r"element type .* is not supported \(float32 and float16", "input is not float32 or float16"),
        (r"^initializer .*element type .* is not supported", "a constant's element type (float8, int4, bfloat16, ...)"),
        (r"dimension \d+ is symbolic", "symbolic input dims"),
        (r"type, not a tensor", "input is not a tensor (optional, sequence)"),
        (r"^node `", "unsupported attribute/form of an operator"),
        (r"output .* constant|nothing to compute", "output is constant or the input"),
    ]
    for pat, cat in rules:
        if re.search(pat, reason):
            return cat
    return "other"


def summarize(results: dict[str, tuple[str, str]]) -> str:
    n = {s: sum(1 for v in results.values() if v[0] == s) for s in ("PASS", "EXCLUDED", "FAIL")}
    return f"{len(results)} candidates: {n['PASS']} PASS, {n['EXCLUDED']} EXCLUDED, {n['FAIL']} FAIL"


def exclusion_table(results: dict[str, tuple[str, str]]) -> list[str]:
    cats: dict[str, int] = {}
    for status, reason in results.values():
        if status == "EXCLUDED":
            c = category(reason)
            cats[c] = cats.get(c, 0) + 1
    return [f"  {v:4d}  {k}" for k, v in sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))]


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="run only these tests and print their status")
    ap.add_argument("--update", action="store_true", help="run every candidate and rewrite expected.txt")
    ap.add_argument("--pass-only", action="store_true", help="run only the tests expected to PASS")
    ap.add_argument("--mncc", default=str(ROOT / "target" / "release" / "mncc"), help="the mncc binary")
    ap.add_argument("--data", help="the node test folder (default: the onnx package's, or generated)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel tests (default 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per test (default 120)")
    ap.add_argument("--list", action="store_true", help="list the candidates and exit")
    a = ap.parse_args()

    start = time.time()
    data = find_node_data(a.data)
    cands = candidates(data)
    if a.list:
        print("\n".join(cands))
        print(f"{len(cands)} candidates in {data}")
        return 0
    mncc = str(Path(a.mncc).resolve())
    if not Path(mncc).is_file():
        sys.exit(f"error: {mncc} not found; run `cargo build --release -p mncc-cli` first")
    env = dict(os.environ)
    env.setdefault("MNCC_HARNESS_TARGET", str(ROOT / "target" / "mncc-node-tests"))

    expected = read_expected()
    ev = expected_onnx_version()
    if not a.update and ev and ev != onnx.__version__:
        print(f"note: expected.txt was produced with onnx {ev}; this is onnx {onnx.__version__}")

    if a.names:
        unknown = [n for n in a.names if n not in cands]
        if unknown:
            sys.exit(f"error: not a candidate: {', '.join(unknown)}")
        todo = list(a.names)
    elif a.pass_only:
        todo = [n for n in cands if expected.get(n, ("",))[0] == "PASS"]
    else:
        # Every candidate: the EXCLUDED ones are rejected before any build and
        # the FAIL ones are few, so this costs little more than the PASS list,
        # and a test whose status changed (fixed or newly accepted) is noticed.
        todo = list(cands)
    print(f"{len(cands)} candidates in {data}; running {len(todo)} with {a.jobs} workers "
          f"(mncc {mncc}, MNCC_HARNESS_TARGET={env['MNCC_HARNESS_TARGET']})", flush=True)

    results: dict[str, tuple[str, str]] = {}
    times: list[tuple[float, str]] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            futs = {pool.submit(run_test, n, cands[n], mncc, a.timeout, env): n for n in todo}
            for i, f in enumerate(concurrent.futures.as_completed(futs), 1):
                n = futs[f]
                status, reason, secs = f.result()
                results[n] = (status, reason)
                times.append((secs, n))
                if a.names or a.update or status != "EXCLUDED" or expected.get(n, ("",))[0] != "EXCLUDED":
                    print(f"[{i}/{len(todo)}] {status} {n}{': ' + reason if reason else ''} ({secs:.1f} s)", flush=True)
    except KeyboardInterrupt:
        with _procs_lock:
            for p in list(_procs):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        raise

    if a.names:
        bad = sum(1 for s, _ in results.values() if s != "PASS")
        print(f"{len(results) - bad} passed, {bad} failed")
        return 1 if bad else 0

    if a.update:
        write_expected(results, data)
        print(f"wrote {EXPECTED.relative_to(ROOT)}")

    # Compare with expected.txt (with --update: with the previous one).
    regressions, changes = [], []
    for n in sorted(results):
        got = results[n]
        exp = expected.get(n)
        if exp is None:
            changes.append(f"new candidate {n}: {got[0]} {got[1]}".rstrip())
        elif exp[0] == "PASS" and got[0] != "PASS":
            regressions.append(f"{n}: expected PASS, got {got[0]}: {got[1]}")
        elif exp != got:
            changes.append(f"{n}: {exp[0]} {exp[1]} -> {got[0]} {got[1]}".rstrip())
    gone = sorted(set(expected) - set(cands))
    for n in gone:
        changes.append(f"{n}: listed in expected.txt but not a candidate with onnx {onnx.__version__}")

    print()
    if changes:
        verb = "recorded in expected.txt" if a.update else "run --update to record them"
        print(f"status changes against expected.txt ({len(changes)}; {verb}):")
        for c in changes[:50]:
            print(f"  {c}")
        if len(changes) > 50:
            print(f"  ... and {len(changes) - 50} more")
    fails = {n: v[1] for n, v in results.items() if v[0] == "FAIL"}
    fails.update({n: v[1] + " (not run)" for n, v in expected.items() if v[0] == "FAIL" and n not in results and n in cands})
    if fails:
        print(f"known failures, not required to pass ({len(fails)}):")
        for n in sorted(fails):
            print(f"  FAIL {n}: {fails[n]}")
    if regressions:
        print(f"REGRESSIONS: expected PASS, did not pass ({len(regressions)}):")
        for r in regressions:
            print(f"  {r}")
    times.sort(reverse=True)
    print("slowest: " + ", ".join(f"{n} {s:.1f} s" for s, n in times[:3]))
    excluded = sum(1 for s, _ in results.values() if s == "EXCLUDED")
    print(f"{excluded} excluded (mncc rejects the model), by reason:")
    print("\n".join(exclusion_table(results)))
    print(f"{summarize(results)}; {time.time() - start:.0f} s")
    passed = sum(1 for s, _ in results.values() if s == "PASS")
    print(f"{passed} passed, {len(regressions)} failed")
    return 1 if regressions and not a.update else 0


if __name__ == "__main__":
    sys.exit(main())
