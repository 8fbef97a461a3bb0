#!/usr/bin/env python3
"""Array data sets and TensorBoard event files end to end, with real processes under mpirun (run by launch/test).

1. Fashion-MNIST converted to .npy by NumPy (uint8 pixels, int64 labels) trains on 4 ranks with
   `data.dataset: arrays` and `output.tensorboard: true`; the same pixels as float32 (x / 255, int32 labels)
   train to bit-identical losses, so both feature types reach the model as the same floats.
2. TensorBoard's own reader (EventAccumulator, from the `tensorboard` package on PyPI) reads the run's event
   files: every numeric field of every metrics.jsonl line is a scalar of the same tag at the same step, with the
   value rounded to float32 (TensorBoard's simple_value).
3. A run resumed from an earlier checkpoint with another learning rate: the reader sees each step once, with the
   values of the resumed run (the restart marker makes it drop what the first run logged after the checkpoint).
4. The GPT on a `.npy` token stream trains bit-identically to the same bytes read as text.
5. Bad arrays (a label out of range, a test split of another shape) stop all 4 ranks before MPI with exit status 2
   and a message naming the file.

The reader runs in a test-only virtual environment under .build/ (created here with pip; never a dependency of
swift-train). A reader that disagrees, or cannot be installed, fails the check: nothing is skipped.
Each check prints `ok` or `FAIL`; the last line is "arrays-tensorboard: N passed, M failed".
Usage: arrays_tensorboard.py REPO_ROOT
"""
import gzip, json, math, os, shutil, subprocess, sys, tempfile, venv

repo = os.path.abspath(sys.argv[1])
environment = os.path.join(repo, ".build", "tensorboard-venv")
python = os.path.join(environment, "bin", "python")

# Phase 0: the reader's environment (tensorboard brings numpy). Re-executes this script inside it.
if os.path.realpath(sys.prefix) != os.path.realpath(environment):
    if not os.path.exists(python) or subprocess.run([python, "-c", "import tensorboard, numpy"]).returncode != 0:
        print(f"creating the test-only environment {environment} (pip install tensorboard numpy)", flush=True)
        try:
            venv.create(environment, with_pip=True, clear=True)
        except Exception as error:  # Debian's python3 needs its python3-venv package for ensurepip
            print(f"FAIL creating {environment}: {error} (on Debian: apt-get install python3-venv)")
            print("arrays-tensorboard: 0 passed, 1 failed")
            sys.exit(1)
        pip = subprocess.run([python, "-m", "pip", "install", "--quiet", "tensorboard", "numpy"], capture_output=True, text=True)
        if pip.returncode != 0:
            print(f"FAIL installing tensorboard into {environment}:\n{pip.stdout[-2000:]}{pip.stderr[-2000:]}")
            print("arrays-tensorboard: 0 passed, 1 failed")
            sys.exit(1)
    os.execv(python, [python, os.path.abspath(__file__), repo])

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
import tensorboard

binary = os.path.join(repo, ".build/release/swift-train")
mpirun = os.path.join(repo, "launch/mpirun")
work = tempfile.mkdtemp(prefix="swift-train-arrays-")
passed = failed = 0
print(f"tensorboard {tensorboard.__version__}, numpy {np.__version__}", flush=True)


def check(name, ok, detail=""):
    global passed, failed
    if ok: passed += 1
    else: failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)


def train(ranks, *args, timeout=300):
    p = subprocess.run([mpirun, "-n", str(ranks), binary, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def path(name): return os.path.join(work, name)


def idx(name):
    """An IDX file of Debian's dataset-fashion-mnist as a NumPy array (the format's own header, read here)."""
    with gzip.open(f"/usr/share/datasets/fashion-mnist/{name}.gz") as f: data = f.read()
    rank = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big") for d in range(rank))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


def metrics(run):
    return [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]


def scalars(run):
    """{tag: [(step, value)]} as TensorBoard's EventAccumulator reads the run directory."""
    accumulator = EventAccumulator(run, size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def expected_scalars(lines):
    """What the event files must hold for these metrics lines: each numeric field but step, rounded to float32."""
    out = {}
    for line in lines:
        for key, value in line.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float, type(None))): continue
            out.setdefault(key, []).append((line["step"], float(np.float32(math.nan if value is None else value))))
    return out


def same_scalars(found, expected):
    """Exact equality (NaN equal to NaN), with the first difference for the message."""
    if sorted(found) != sorted(expected): return False, f"tags {sorted(found)} != {sorted(expected)}"
    for tag in expected:
        a, b = found[tag], expected[tag]
        if [s for s, _ in a] != [s for s, _ in b]: return False, f"{tag}: steps {[s for s, _ in a]} != {[s for s, _ in b]}"
        for (step, x), (_, y) in zip(a, b):
            if not (x == y or (math.isnan(x) and math.isnan(y))): return False, f"{tag} at step {step}: {x} != {y}"
    return True, ""


# Phase 1: the arrays, written by NumPy.
train_images, test_images = idx("train-images-idx3-ubyte"), idx("t10k-images-idx3-ubyte")
train_labels, test_labels = idx("train-labels-idx1-ubyte"), idx("t10k-labels-idx1-ubyte")
np.save(path("train_u8.npy"), train_images)                     # (60000, 28, 28) uint8, format 1.0
np.save(path("train_labels.npy"), train_labels.astype(np.int64))
np.save(path("test_u8.npy"), test_images)
np.save(path("test_labels.npy"), test_labels.astype(np.int64))
with open(path("train_f32.npy"), "wb") as f:                     # format 2.0, float32 in [0, 1]
    np.lib.format.write_array(f, train_images.astype(np.float32) / 255, version=(2, 0))
np.save(path("test_f32.npy"), test_images.astype(np.float32) / 255)
np.save(path("train_labels_i32.npy"), train_labels.astype(np.int32))
np.save(path("test_labels_i32.npy"), test_labels.astype(np.int32))
bad_labels = test_labels.astype(np.int64)
bad_labels[123] = 10
np.save(path("test_labels_bad.npy"), bad_labels)
np.save(path("test_14x56.npy"), test_images.reshape(-1, 14, 56))


def arrays(features, labels, test_features, test_labels):
    return ["--set", "data.dataset=arrays", "--set", f"data.train_features={path(features)}",
            "--set", f"data.train_labels={path(labels)}", "--set", f"data.test_features={path(test_features)}",
            "--set", f"data.test_labels={path(test_labels)}"]


SHORT = ["--set", "train.steps=60", "--set", "train.log_every=20", "--set", "output.tensorboard=true",
         "--set", "checkpoint.every=20"]
u8 = arrays("train_u8.npy", "train_labels.npy", "test_u8.npy", "test_labels.npy")
f32 = arrays("train_f32.npy", "train_labels_i32.npy", "test_f32.npy", "test_labels_i32.npy")

# 1. Training on arrays.
rc, log = train(4, *u8, *SHORT, "--set", "data.classes=10", "--out", path("run-u8"))
summary = json.load(open(path("run-u8/summary.json"))) if rc == 0 else {}
check(f"arrays (uint8 .npy): 60 steps on 4 ranks, test accuracy {summary.get('eval_accuracy', float('nan')):.4f} > 0.70",
      rc == 0 and summary.get("steps") == 60 and summary.get("eval_accuracy", 0) > 0.70, log[-1500:])
rc, log = train(4, *f32, *SHORT, "--out", path("run-f32"))
if rc == 0:
    losses = lambda run: [(l["step"], l["loss"]) for l in metrics(run) if "loss" in l]
    evals = lambda run: [(l["step"], l["eval_loss"], l["eval_accuracy"]) for l in metrics(run) if "eval_loss" in l]
    check("arrays (float32 .npy, format 2.0, int32 labels): losses and evaluation bit-identical to the uint8 run",
          losses(path("run-f32")) == losses(path("run-u8")) and evals(path("run-f32")) == evals(path("run-u8")),
          f"{losses(path('run-f32'))} vs {losses(path('run-u8'))}")
else:
    check("arrays (float32 .npy)", False, log[-1500:])

# 2. The event files, read by TensorBoard.
if os.path.exists(path("run-u8/metrics.jsonl")):
    files = [f for f in os.listdir(path("run-u8")) if f.startswith("events.out.tfevents.")]
    found, expected = scalars(path("run-u8")), expected_scalars(metrics(path("run-u8")))
    ok, why = same_scalars(found, expected)
    wanted = {"loss", "lr", "grad_norm", "noise_scale", "samples_per_sec", "eval_loss", "eval_accuracy"}
    check(f"TensorBoard's EventAccumulator reads {len(files)} event file: {len(found)} tags "
          f"({', '.join(sorted(found))}) at the steps and values of metrics.jsonl",
          ok and len(files) == 1 and wanted <= set(found) and [s for s, _ in found.get("loss", [])] == [20, 40, 60], why)
    without = [f for f in os.listdir(path("run-f32")) if "tfevents" in f] if os.path.isdir(path("run-f32")) else []
    rc, log = train(1, *u8, "--set", "train.steps=2", "--set", "checkpoint.final=false", "--out", path("run-off"))
    check("output.tensorboard off (the default): no event file", rc == 0 and not any("tfevents" in f for f in os.listdir(path("run-off"))),
          log[-800:])

# 3. Resumed from the step-20 checkpoint of the finished run, with another learning rate: steps 40 and 60 again.
if os.path.isdir(path("run-u8/checkpoints")):
    step20 = sorted(d for d in os.listdir(path("run-u8/checkpoints")) if d.endswith("20"))
    rc, log = train(2, "--resume", path(f"run-u8/checkpoints/{step20[0]}") if step20 else "missing", "--set", "optimizer.lr=0.0003")
    lines = metrics(path("run-u8"))
    found = scalars(path("run-u8"))
    ok, why = same_scalars(found, expected_scalars(lines))
    changed = [l["lr"] for l in lines if l.get("step") == 40 and "lr" in l] != [l["lr"] for l in metrics(path("run-f32")) if l.get("step") == 40 and "lr" in l]
    check("resumed at step 20 with another lr: TensorBoard sees steps 40 and 60 once, with the resumed run's values",
          rc == 0 and ok and changed and [s for s, _ in found.get("loss", [])] == [20, 40, 60], f"rc {rc} {why}\n{log[-800:]}")

# 4. The GPT on a token stream from .npy: the bytes of one fortunes file as uint16 tokens train bit-identically to
#    the text file itself (vocabulary 256 either way).
text = "/usr/share/games/fortunes/computers"
np.save(path("tokens.npy"), np.frombuffer(open(text, "rb").read(), dtype=np.uint8).astype(np.uint16))
GPT = ["--config", os.path.join(repo, "configs/gpt-adamw.yaml"), "--set", "model.layers=1", "--set", "model.width=32",
       "--set", "model.heads=2", "--set", "model.context=32", "--set", "train.global_batch=8", "--set", "train.steps=6",
       "--set", "train.log_every=3", "--set", "train.eval_every=0", "--set", "train.eval_sequences=16",
       "--set", "schedule.warmup_steps=2"]
rc1, log1 = train(2, *GPT, "--set", f"data.path={text}", "--out", path("gpt-text"))
rc2, log2 = train(2, *GPT, "--set", f"data.path={path('tokens.npy')}", "--out", path("gpt-npy"))
if rc1 == rc2 == 0:
    numbers = lambda run: [(l["step"], l.get("loss"), l.get("eval_loss"), l.get("eval_bits_per_byte")) for l in metrics(run)]
    check("GPT on a .npy token stream: losses bit-identical to the same bytes read as text, on 2 ranks",
          numbers(path("gpt-npy")) == numbers(path("gpt-text")) and len(numbers(path("gpt-npy"))) == 3,
          f"{numbers(path('gpt-npy'))} vs {numbers(path('gpt-text'))}")
else:
    check("GPT on a .npy token stream", False, f"rc {rc1} {rc2}\n{log1[-800:]}\n{log2[-800:]}")

# 5. Bad arrays: every rank stops before MPI, status 2, the file named.
for name, labels, test, needle in [("label out of range", "test_labels_bad.npy", "test_u8.npy", "label 10 of example 123"),
                                   ("test split of another shape", "test_labels.npy", "test_14x56.npy", "(10000, 14, 56)")]:
    rc, log = train(4, *arrays("train_u8.npy", "train_labels.npy", test, labels), "--set", "data.classes=10",
                    "--out", path("never"), timeout=120)
    check(f"{name}: exit 2 on 4 ranks before MPI, naming the file", rc == 2 and needle in log and (labels in log or test in log)
          and not os.path.exists(path("never")), f"rc {rc}: {log[-800:]}")

shutil.rmtree(work, ignore_errors=True)
print(f"arrays-tensorboard: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
