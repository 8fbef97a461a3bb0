"""TPE anchor: swift-train's TPE and random samplers against Optuna's on two test functions (docs/search.md).

For each function (shifted quadratic in 3-D, Branin) and each of 20 seeds, 60 sequential trials with
  swift-train search --function F --sampler tpe|random --seed S --trials 60
and with Optuna's TPESampler(seed=S) (its defaults) and RandomSampler(seed=S) on the same space. Prints, at
10, 20, ..., 60 trials, the median best-so-far over the seeds and Optuna TPE's interquartile range, and checks
  (1) swift-train TPE's median lies within Optuna TPE's spread (10th..90th percentile over seeds) at every checkpoint
      from 20 trials on (the first 10 are random startup trials in both);
  (2) swift-train TPE's median at 60 trials is below swift-train random's, on both functions.
Optuna is a test-only dependency: python3 -m venv /tmp/optuna-venv && /tmp/optuna-venv/bin/pip install optuna
Run:  /tmp/optuna-venv/bin/python Tests/Anchors/tpe_anchor.py .build/debug/swift-train > Tests/Anchors/tpe_anchor.txt
"""
import csv, io, math, subprocess, sys
import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
BINARY = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/swift-train"
import os
FIRST_SEED = int(os.environ.get("FIRST_SEED", "0"))
SEEDS, TRIALS, CHECKS = range(FIRST_SEED, FIRST_SEED + 20), 60, [10, 20, 30, 40, 50, 60]
CENTRE = [1.5, -2.0, 0.5]


def quadratic(x):
    return sum((a - c) ** 2 for a, c in zip(x, CENTRE))


def branin(x):
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * math.cos(x[0]) + 10


FUNCTIONS = {
    "quadratic": (quadratic, [("x0", -5, 5), ("x1", -5, 5), ("x2", -5, 5)]),
    "branin": (branin, [("x1", -5, 10), ("x2", 0, 15)]),
}


def swift_curve(name, sampler, seed):
    out = subprocess.run([BINARY, "search", "--function", name, "--sampler", sampler, "--seed", str(seed),
                          "--trials", str(TRIALS)], check=True, capture_output=True, text=True).stdout
    return [float(r["best_so_far"]) for r in csv.DictReader(io.StringIO(out))]


def optuna_curve(name, sampler, seed):
    f, space = FUNCTIONS[name]
    s = optuna.samplers.TPESampler(seed=seed) if sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=s, direction="minimize")
    study.optimize(lambda t: f([t.suggest_float(n, lo, hi) for n, lo, hi in space]), n_trials=TRIALS)
    return list(np.minimum.accumulate([t.value for t in study.trials]))


failures = []
print(f"optuna {optuna.__version__}; seeds {SEEDS.start}..{SEEDS.stop - 1} x {TRIALS} trials; median best-so-far "
      "(Optuna TPE's 25th-75th and 10th-90th percentiles over the seeds)")
for name in FUNCTIONS:
    curves = {(impl, s): np.array([fn(name, s, seed) for seed in SEEDS])
              for impl, fn in [("swift", swift_curve), ("optuna", optuna_curve)] for s in ["tpe", "random"]}
    print(f"\n{name}")
    print("trials  swift-tpe  optuna-tpe [25%, 75%] [10%, 90%]               swift-random  optuna-random")
    for n in CHECKS:
        med = {k: float(np.median(v[:, n - 1])) for k, v in curves.items()}
        lo, hi = np.percentile(curves[("optuna", "tpe")][:, n - 1], [25, 75])
        lo10, hi90 = np.percentile(curves[("optuna", "tpe")][:, n - 1], [10, 90])
        ok = lo10 <= med[("swift", "tpe")] <= hi90
        side = "" if lo <= med[("swift", "tpe")] <= hi else (" below IQR" if med[("swift", "tpe")] < lo else " above IQR")
        print(f"{n:6d}  {med[('swift', 'tpe')]:9.4f}  {med[('optuna', 'tpe')]:10.4f} [{lo:.4f}, {hi:.4f}] [{lo10:.4f}, {hi90:.4f}]  "
              f"{med[('swift', 'random')]:12.4f}  {med[('optuna', 'random')]:13.4f}  {'' if ok else '(outside 10-90%)'}{side}")
        if n >= 20 and not ok:
            failures.append(f"{name}: swift TPE median at {n} trials outside Optuna TPE's 10th-90th percentile range")
    st, sr = (float(np.median(curves[("swift", k)][:, -1])) for k in ["tpe", "random"])
    if not st < sr:
        failures.append(f"{name}: swift TPE median {st:.4f} not below swift random {sr:.4f} at {TRIALS} trials")

print("\n" + ("PASS: within Optuna TPE's 10-90% spread from 20 trials on, and TPE beats random on both" if not failures
              else "FAIL:\n  " + "\n  ".join(failures)))
sys.exit(1 if failures else 0)
