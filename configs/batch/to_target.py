#!/usr/bin/env python3
"""Steps and examples to a target from run directories' metrics.jsonl (docs/batch-size.md, issue 17 b): a test
   accuracy to reach (0.85), or with `loss:` an evaluation loss to get down to (loss:2.1).
   python3 configs/batch/to_target.py 0.85 runs/batch/fixed-64 … runs/batch/adaptive
   python3 configs/batch/to_target.py loss:2.1 runs/batch/gpt-fixed-8 … runs/batch/gpt-adaptive"""
import json, sys
by_loss = sys.argv[1].startswith("loss:")
target = float(sys.argv[1][5:] if by_loss else sys.argv[1])
reached = (lambda l: l.get("eval_loss", float("inf")) <= target) if by_loss else (lambda l: l.get("eval_accuracy", 0) >= target)
print("| run | steps to %s | examples to %s | final batch |" % (sys.argv[1], sys.argv[1]))
print("|---|---:|---:|---:|")
for run in sys.argv[2:]:
    lines = [json.loads(l) for l in open(run + "/metrics.jsonl")]
    batch0 = int([l for l in open(run + "/config.yaml") if l.strip().startswith("global_batch:")][0].split(":")[1])
    examples, batch, hit = {}, batch0, None
    for l in lines:
        if "examples" in l: examples[l["step"]] = l["examples"]
        if "global_batch" in l: batch = l["global_batch"]
        if hit is None and "step" in l and reached(l): hit = l["step"]
    if hit is None: print("| %s | not reached | | %d |" % (run, batch)); continue
    e = examples.get(hit, hit * batch0)
    print("| %s | %d | %d | %d |" % (run, hit, e, batch))
