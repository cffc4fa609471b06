"""Same seed, 1 vs 2 torch threads: MAML (second order, MLP) fit + predict; max |difference| and time.

Run: ``python tools/measure_threads.py`` (each thread count in its own process).
"""

import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np, torch
from nanonb.threads import set_threads
set_threads(int(sys.argv[1]))
from nanonb.learners.registry import make_learner
from nanonb.tasks import Task, TaskSet
rng = np.random.default_rng(0)
tasks = []
for i in range(12):
    x = rng.uniform(-5, 5, (40, 1)); a, p = rng.uniform(0.5, 3), rng.uniform(0, np.pi)
    tasks.append(Task(f"t{i}", x, a * np.sin(x[:, 0] + p)))
ts = TaskSet(tasks)
t0 = time.perf_counter()
m = make_learner("maml", model="MLP", model_kwargs={"hidden": (64, 64)}, n_iterations=200, inner_lr=0.05, seed=0)
m.fit(ts, progress=False)
preds = [m.adapt(ts.episode(t, 5, seed=1).support).predict(ts.episode(t, 5, seed=1).query).tolist() for t in ts]
print(json.dumps({"threads": torch.get_num_threads(), "seconds": time.perf_counter() - t0, "preds": preds,
                  "loss": m.history["train_loss"][-1]}))
"""

out = {}
for n in (1, 2):
    r = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True)
    out[n] = json.loads(r.stdout.strip().splitlines()[-1])
import numpy as np  # noqa: E402

d = max(np.max(np.abs(np.subtract(a, b))) for a, b in zip(out[1]["preds"], out[2]["preds"]))
scale = max(np.max(np.abs(a)) for a in out[1]["preds"])
print(f"max |pred(1 thread) - pred(2 threads)| = {d:.3g} (predictions up to {scale:.3g}); "
      f"time {out[1]['seconds']:.1f} s vs {out[2]['seconds']:.1f} s; final train loss "
      f"{out[1]['loss']:.6g} vs {out[2]['loss']:.6g}; bit-identical: {d == 0}")
