#!/usr/bin/env python3
"""Steps and examples to a test-accuracy target from run directories' metrics.jsonl (docs/batch-size.md, issue 17 b).
   python3 configs/batch/to_target.py 0.85 runs/batch/fixed-64 … runs/batch/adaptive"""
import json, sys
target = float(sys.argv[1])
print("| run | steps to %.2f | examples to %.2f | final batch |" % (target, target))
print("|---|---:|---:|---:|")
for run in sys.argv[2:]:
    lines = [json.loads(l) for l in open(run + "/metrics.jsonl")]
    batch0 = int([l for l in open(run + "/config.yaml") if l.strip().startswith("global_batch:")][0].split(":")[1])
    examples, batch, hit = {}, batch0, None
    for l in lines:
        if "examples" in l: examples[l["step"]] = l["examples"]
        if "global_batch" in l: batch = l["global_batch"]
        if hit is None and l.get("eval_accuracy", 0) >= target: hit = l["step"]
    if hit is None: print("| %s | not reached | | %d |" % (run, batch)); continue
    e = examples.get(hit, hit * batch0)
    print("| %s | %d | %d | %d |" % (run, hit, e, batch))
