"""Per-node median times of onnxruntime (1 thread, sequential, all graph
optimizations) from its profiler: `python3 bench/ort_profile.py model.onnx`.
The profile JSON goes to a temporary directory."""
import collections, json, os, sys, tempfile
import numpy as np
import onnxruntime as ort
m = sys.argv[1]
so = ort.SessionOptions(); so.intra_op_num_threads=1; so.execution_mode=ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.enable_profiling=True
so.profile_file_prefix=os.path.join(tempfile.mkdtemp(), 'ort')
s = ort.InferenceSession(m, so, providers=['CPUExecutionProvider'])
inp = s.get_inputs()[0]
x = np.random.rand(*[d if isinstance(d,int) else 1 for d in inp.shape]).astype(np.float32)
for _ in range(200): s.run(None, {inp.name: x})
f = s.end_profiling()
ev = json.load(open(f))
d = collections.defaultdict(list)
for e in ev:
    if e.get('cat')=='Node' and e['name'].endswith('_kernel_time'):
        d[e['name'][:-12]].append((e['dur'], e['args'].get('op_name')))
tot=0
for name, v in d.items():
    durs = sorted(x[0] for x in v); med = durs[len(durs)//2]; tot+=med
    print(f"{med/1000:8.4f} ms  {v[0][1]:<20} {name}")
print("total", tot/1000)
