#!/usr/bin/env python3
"""Checkpoint, resume and fault tests with real processes under mpirun (run by launch/test).

Each check prints `ok` or `FAIL` and a reason; the last line is "checkpoint-faults: N passed, M failed".
Uses a small MLP on the real Fashion-MNIST so every run takes seconds.
Usage: checkpoint_faults.py REPO_ROOT
"""
import hashlib, json, os, shutil, signal, struct, subprocess, sys, tempfile, time

repo = os.path.abspath(sys.argv[1])  # absolute: some cases run with another working directory
# SWIFT_TRAIN_BINARY: another build of swift-train (e.g. .build/debug/swift-train while iterating).
binary = os.path.abspath(os.environ.get("SWIFT_TRAIN_BINARY", os.path.join(repo, ".build/release/swift-train")))
mpirun = os.path.join(repo, "launch/mpirun")
work = tempfile.mkdtemp(prefix="swift-train-faults-")
passed = failed = 0
SMALL = ["--set", "model.hidden=[64, 32]", "--set", "train.log_every=10", "--set", "output.save_model=true"]


def check(name, ok, detail=""):
    global passed, failed
    if ok: passed += 1
    else: failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)


def run(ranks, *args, timeout=300, cwd=None):
    cmd = [mpirun, "-n", str(ranks), binary, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout + p.stderr


def metrics_steps(directory):
    """The step of every metrics.jsonl line (each line must be one JSON object)."""
    return [json.loads(line).get("step") for line in open(directory + "/metrics.jsonl")]


def read_safetensors(path):
    with open(path, "rb") as f: data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n]); body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__": continue
        a, b = e["data_offsets"]
        out[name] = (e["shape"], struct.unpack(f"<{(b - a) // 4}f", body[a:b]))
    return out, header.get("__metadata__", {})


def max_rel_diff(a, b):
    worst = 0.0
    for name in a:
        for x, y in zip(a[name][1], b[name][1]):
            worst = max(worst, abs(x - y) / max(1.0, abs(y)))
    return worst


def digest(directory):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(directory)):
        for f in sorted(files):
            with open(os.path.join(root, f), "rb") as fh: h.update(f.encode() + fh.read())
    return h.hexdigest()


def out(name): return os.path.join(work, name)


# 1. Same world size and stage: a run paused at step 20 (train.stop_at: checkpoint, exit) and resumed is
#    bit-identical to an uninterrupted one.
for stage in (0, 2, 3):
    common = SMALL + ["--set", "train.global_batch=96", "--set", f"zero.stage={stage}", "--set", "checkpoint.every=20"]
    rc1, log1 = run(2, *common, "--set", "train.steps=40", "--out", out(f"full{stage}"))
    rc2, log2 = run(2, *common, "--set", "train.steps=40", "--set", "train.stop_at=20", "--out", out(f"half{stage}"))
    rc3, log3 = run(2, "--resume", out(f"half{stage}"), "--set", "train.steps=40")
    # Every parameter bit-identical (the files' metadata holds each run's own configuration, so compare tensors).
    same = rc1 == rc2 == rc3 == 0 and read_safetensors(out(f"full{stage}") + "/model.safetensors")[0] == \
        read_safetensors(out(f"half{stage}") + "/model.safetensors")[0]
    check(f"stage {stage}: 20 steps + resume to 40 on 2 ranks is bit-identical to 40 uninterrupted steps", same,
          f"rc {rc1} {rc2} {rc3}\n{log3[-800:]}")

# 2. Different world size and stage: train on 2 ranks, resume on 1, 3 and 4 (other stages), match an
#    uninterrupted 2-rank run. Runs differ only in float summation order across world sizes, as in the
#    data-parallel equivalence checks (measured ≤ 1e-7 after 20 more steps), so the tolerance is 1e-5
#    relative to max(1, |θ|), as there.
families = {
    "muon+adamw": ["--set", "groups.matrix.optimizer=muon", "--set", "groups.matrix.lr=0.02"],
    "lamb": ["--set", "optimizer.name=lamb", "--set", "optimizer.lr=0.005"],
    "shampoo": ["--set", "optimizer.name=shampoo", "--set", "optimizer.lr=0.002", "--set", "optimizer.graft=adam"],
    "sgd-momentum": ["--set", "optimizer.name=sgd", "--set", "optimizer.momentum=0.9", "--set", "optimizer.lr=0.05"],
}
for family, flags in families.items():
    common = SMALL + flags + ["--set", "train.global_batch=96", "--set", "checkpoint.every=20", "--set", "schedule.warmup_steps=5"]
    rc, log = run(2, *common, "--set", "train.steps=40", "--set", "zero.stage=1", "--out", out(f"{family}-full"))
    rc2, log2 = run(2, *common, "--set", "train.steps=40", "--set", "train.stop_at=20", "--set", "zero.stage=1", "--out", out(f"{family}-half"))
    if rc or rc2:
        check(f"{family}: reference runs", False, (log + log2)[-800:]); continue
    reference, _ = read_safetensors(out(f"{family}-full") + "/model.safetensors")
    for ranks, stage in ((1, 0), (3, 2), (4, 1), (3, 3)):
        ckpt = out(f"{family}-half") + "/checkpoints/step-00000020"
        rc, log = run(ranks, "--resume", ckpt, "--set", "train.steps=40", "--set", f"zero.stage={stage}",
                      "--out", out(f"{family}-r{ranks}-s{stage}"))
        if rc:
            check(f"{family}: resume on {ranks} ranks", False, log[-800:]); continue
        resumed, _ = read_safetensors(out(f"{family}-r{ranks}-s{stage}") + "/model.safetensors")
        d = max_rel_diff(resumed, reference)
        check(f"{family}: written by 2 ranks (stage 1), resumed on {ranks} ranks (stage {stage}): max rel. diff {d:.2e} ≤ 1e-5",
              d <= 1e-5, f"{d}")

# 2b. The other way round: written at ZeRO stage 3 (each rank holds only its parameter shard; the checkpoint gathers
#     the masters) on 3 ranks, resumed at stages 0, 1, 2 and 3 on 1, 2, 4 and 3 ranks, against an uninterrupted
#     3-rank stage-3 run; the resumed stage-3 run also exports model.safetensors, which the comparison reads.
#     Same tolerance as section 2 (summation order only).
flags = families["muon+adamw"] + ["--set", "train.global_batch=96", "--set", "checkpoint.every=20", "--set", "zero.stage=3"]
rc, log = run(3, *SMALL, *flags, "--set", "train.steps=40", "--out", out("s3-full"))
rc2, log2 = run(3, *SMALL, *flags, "--set", "train.steps=40", "--set", "train.stop_at=20", "--out", out("s3-half"))
if rc or rc2:
    check("stage 3: reference runs", False, (log + log2)[-800:])
else:
    reference, _ = read_safetensors(out("s3-full") + "/model.safetensors")
    for ranks, stage in ((1, 0), (2, 1), (4, 2), (3, 3)):
        rc, log = run(ranks, "--resume", out("s3-half") + "/checkpoints/step-00000020", "--set", "train.steps=40",
                      "--set", f"zero.stage={stage}", "--out", out(f"s3-r{ranks}-s{stage}"))
        if rc:
            check(f"stage 3 checkpoint resumed on {ranks} ranks at stage {stage}", False, log[-800:]); continue
        resumed, _ = read_safetensors(out(f"s3-r{ranks}-s{stage}") + "/model.safetensors")
        d = max_rel_diff(resumed, reference)
        check(f"written by 3 ranks at stage 3, resumed on {ranks} ranks at stage {stage}: max rel. diff {d:.2e} ≤ 1e-5",
              d <= 1e-5 and (d == 0 or (ranks, stage) != (3, 3)), f"{d}")

# 3. SIGTERM and SIGINT on the job: every rank finishes its step, a checkpoint is written, non-zero exit with a message.
#    (mpirun turns SIGINT into SIGTERM for the ranks, so the message names the signal the ranks received.)
for sig in (signal.SIGTERM, signal.SIGINT):
    d = out(f"signal-{sig.name}")
    p = subprocess.Popen([mpirun, "-n", "2", binary, *SMALL, "--set", "train.steps=500000", "--set", "checkpoint.every=0",
                          "--out", d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(d + "/metrics.jsonl") and os.path.getsize(d + "/metrics.jsonl") > 200):
        time.sleep(0.2)
    p.send_signal(sig)
    try: output, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill(); check(f"{sig.name}: job ends", False, "still running 60 s after the signal"); continue
    ckpts = [c for c in os.listdir(d + "/checkpoints") if c.startswith("step-")] if os.path.isdir(d + "/checkpoints") else []
    check(f"{sig.name}: non-zero exit ({p.returncode}), message, checkpoint {ckpts}",
          p.returncode != 0 and "stopped by SIG" in output and "continue with --resume" in output and len(ckpts) == 1, output[-600:])
    rc, log = run(2, "--resume", d, "--set", "train.steps=" + str(int(ckpts[0][5:]) + 20) if ckpts else "1")
    check(f"{sig.name}: resume from that checkpoint runs to the end", rc == 0 and "resumed from" in log, log[-600:])

# 4. A rank killed mid-run: the job ends (no hang) and resuming from the last checkpoint works.
d = out("killed")
p = subprocess.Popen([mpirun, "-n", "2", binary, *SMALL, "--set", "train.steps=500000", "--set", "checkpoint.every=200",
                      "--out", d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists(d + "/checkpoints/latest"):
    time.sleep(0.2)
children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
victims = [c for c in children if "swift-train" in open(f"/proc/{c}/cmdline", "rb").read().decode(errors="ignore")]
if victims:
    os.kill(int(victims[-1]), signal.SIGKILL)
try:
    p.communicate(timeout=60); ended = True
except subprocess.TimeoutExpired:
    p.kill(); ended = False
check(f"a rank killed with SIGKILL: the job ends (exit {p.returncode}) instead of hanging", ended and bool(victims) and p.returncode != 0,
      f"victims {victims}")
rc, log = run(2, "--resume", d, "--set", "train.steps=" + str(int(open(d + "/checkpoints/latest").read().strip()[5:]) + 10))
check("resume after the killed rank works", rc == 0 and "resumed from" in log, log[-600:])

# 4b. checkpoint.async: a rank SIGKILLed while a background checkpoint write is in flight (its directory still
#     .partial). The job ends; resume never takes the half-written checkpoint (named directly it is rejected; the run
#     directory resumes from the previous complete one) and runs to the end. A wider MLP (~5.6 M parameters, ~45 MB
#     of optimizer state per checkpoint) makes the write last long enough to be caught; a kill that lands after the
#     checkpoint completed is retried with a fresh run (up to 5 times), so the check is always of an in-flight write.
WIDE = ["--set", "model.hidden=[2048, 2048]", "--set", "train.log_every=5", "--set", "train.global_batch=64"]
caught = None
for attempt in range(5):
    d = out(f"async-killed-{attempt}")
    p = subprocess.Popen([mpirun, "-n", "2", binary, *WIDE, "--set", "train.steps=500000", "--set", "checkpoint.every=5",
                          "--set", "checkpoint.async=true", "--set", "checkpoint.keep=2", "--out", d],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root, partial, deadline = d + "/checkpoints", None, time.time() + 120
    while time.time() < deadline and partial is None and p.poll() is None:
        # A complete checkpoint first (something to fall back to), then the next one caught half-written.
        if os.path.exists(root + "/latest"):
            partial = next((n for n in os.listdir(root) if n.endswith(".partial")), None)
        time.sleep(0.002)
    children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    victims = [c for c in children if "swift-train" in open(f"/proc/{c}/cmdline", "rb").read().decode(errors="ignore")]
    if victims: os.kill(int(victims[-1]), signal.SIGKILL)
    try: p.communicate(timeout=60)
    except subprocess.TimeoutExpired: p.kill(); p.communicate()
    if partial and os.path.isdir(f"{root}/{partial}") and p.returncode != 0:
        caught = (d, partial); break
check("checkpoint.async: a rank killed while a checkpoint is written in the background (caught mid-write)", caught is not None,
      f"no kill landed during a write in 5 attempts (last: {partial})")
if caught:
    d, partial = caught
    latest = open(d + "/checkpoints/latest").read().strip()
    check(f"the half-written {partial} is newer than latest ({latest})", int(partial[6:14]) > int(latest[5:]), f"{partial} vs {latest}")
    rc, log = run(2, *WIDE, "--resume", f"{d}/checkpoints/{partial}", "--set", "train.steps=1000")
    check("resuming from the half-written directory is refused (exit 2: an incomplete checkpoint)",
          rc == 2 and "an incomplete checkpoint (its write was interrupted" in log, log[-600:])
    rc, log = run(2, "--resume", d, "--set", "train.steps=" + str(int(latest[5:]) + 5))
    check(f"resuming the run takes {latest}, the last complete checkpoint, and runs to the end",
          rc == 0 and f"resumed from {d}/checkpoints/{latest}" in log, log[-600:])

# 5. K consecutive non-finite steps stop the run with a clear error (an absurd learning rate overflows the weights).
rc, log = run(2, *SMALL, "--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e6", "--set", "train.max_bad_steps=3",
              "--set", "train.steps=200", "--out", out("diverged"))
check(f"3 consecutive non-finite steps stop the run (exit {rc}) with a message", rc != 0 and "3 consecutive steps had a non-finite gradient" in log,
      log[-600:])

# 6. Bad checkpoints: a clear error naming the file and the problem, and nothing overwritten.
base = out("half0") + "/checkpoints/step-00000020"
def broken(name, mutate, needle, *extra):
    d = out("broken-" + name)
    shutil.copytree(base, d)
    mutate(d)
    before = digest(d)
    rc, log = run(2, "--resume", d, "--set", "train.steps=40", *extra, "--out", out("never-" + name))
    check(f"{name}: rejected (exit {rc}) naming the problem, nothing written", rc != 0 and needle in log and digest(d) == before
          and not os.path.exists(out("never-" + name)), log[-600:])
def flip(d):
    with open(d + "/state-rank-00000.bin", "r+b") as f: f.seek(5000); b = f.read(1); f.seek(5000); f.write(bytes([b[0] ^ 0xFF]))
def truncate(d):
    with open(d + "/params.bin", "r+b") as f: f.truncate(1000)
def version(d):
    m = json.load(open(d + "/manifest.json")); m["version"] = 99; json.dump(m, open(d + "/manifest.json", "w"))
broken("corrupt state file", flip, "checksum mismatch")
broken("truncated params file", truncate, "params.bin: 1000 bytes")
broken("wrong format version", version, "format version 99")
broken("different model", lambda d: None, "different model", "--set", "model.hidden=[48, 32]")
def edit_step(d):
    m = json.load(open(d + "/manifest.json")); m["step"] = 10; m["dataStep"] = 10; json.dump(m, open(d + "/manifest.json", "w"))
broken("edited manifest (J)", edit_step, "manifest.json: checksum mismatch")
# D: rejected only when the state is restored (another optimizer has no state there): still exit 2, nothing written.
broken("another optimizer (D)", lambda d: None, "no optimizer group 'sgd'", "--set", "optimizer.name=sgd")

# A checkpoint copied out of its run, resumed without --out: there is no run to continue in, so nothing is written
# next to it (before, its grandparent folder was taken for the run directory).
d = out("loose-checkpoint/copy")
shutil.copytree(base, d)
before = digest(out("loose-checkpoint"))
rc, log = run(2, "--resume", d, "--set", "train.steps=40")
check(f"a checkpoint outside a run directory, no --out: exit {rc}, asks for --out, nothing written",
      rc == 2 and "is not inside a run directory" in log and digest(out("loose-checkpoint")) == before
      and sorted(os.listdir(out("loose-checkpoint"))) == ["copy"], log[-600:])

# 8. Resuming into the run's own directory (issue 15 item 5, defects A, B, D): every rejection exits 2 before
#    anything in the directory changes; an accepted resume continues metrics.jsonl and keeps what it replaces.
d = out("inplace")
rc, log = run(2, *SMALL, "--set", "train.global_batch=96", "--set", "train.steps=40", "--set", "checkpoint.every=20", "--out", d)
before = digest(d)
for name, extra, needle in [
        ("finished run (B)", [], "nothing left to train"),
        ("train.steps below the checkpoint (A)", ["--set", "train.steps=30", "--resume", d + "/checkpoints/step-00000040"],
         "past the 30 steps"),
        ("another optimizer (D)", ["--set", "optimizer.name=sgd", "--set", "train.steps=60"], "no optimizer group 'sgd'")]:
    args = extra if "--resume" in extra else ["--resume", d, *extra]
    start = time.time()
    rc2, log2 = run(2, *args, timeout=120)
    check(f"resume of {name}: exit {rc2} in {time.time() - start:.0f}s naming the problem, the run directory unchanged",
          rc == 0 and rc2 == 2 and needle in log2 and digest(d) == before, log2[-600:])
rc2, log2 = run(2, "--out", d, "--resume", d, "--set", "train.steps=60", "--set", "optimizer.lr=0.002")
steps = metrics_steps(d)
kept = d + "/previous/step-00000040"
check("--out DIR --resume DIR continues in place: metrics.jsonl continues, config change reported, replaced files kept",
      rc2 == 0 and "resumed from" in log2 and "optimizer.lr: 0.001 → 0.002" in log2 and steps[-1] == 60
      and [s for s in steps if s] == sorted(s for s in steps if s) and os.path.exists(kept + "/summary.json")
      and json.load(open(kept + "/summary.json"))["steps"] == 40 and json.load(open(d + "/summary.json"))["steps"] == 60,
      f"steps {steps}\n{log2[-600:]}")
# --resume latest --out DIR takes DIR's checkpoint, although a newer run exists under runs/.
os.makedirs(out("cwd/runs"), exist_ok=True)
rc3, log3 = run(1, *SMALL, "--set", "train.global_batch=96", "--set", "train.steps=10", "--out", "runs/newer", cwd=out("cwd"))
rc4, log4 = run(1, "--resume", "latest", "--out", d, "--set", "train.steps=80", cwd=out("cwd"))
check("--resume latest --out DIR resumes DIR's latest checkpoint, not the newest run under runs/",
      rc3 == 0 and rc4 == 0 and f"resumed from {d}/checkpoints/step-00000060" in log4 and metrics_steps(d)[-1] == 80, log4[-600:])

# 9. E: two runs started at once with the same --out: exactly one claims the directory, the other exits 2 having
#    written nothing, and metrics.jsonl holds one run's lines, each a JSON object.
d = out("contested")
cmd = [mpirun, "-n", "1", binary, *SMALL, "--set", "train.global_batch=96", "--set", "train.steps=30", "--out", d]
procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
results = [(p.wait(timeout=300), p.stdout.read()) for p in procs]
codes = sorted(r for r, _ in results)
try: steps = metrics_steps(d)
except Exception as e: steps = [f"unreadable: {e}"]
check(f"two runs with one --out: exits {codes}, one run's metrics ({len(steps)} lines)",
      codes == [0, 2] and any("already holds a run" in o or "claimed by another run" in o for _, o in results)
      and steps == list(range(10, 31, 10)) + [30], f"{steps}\n" + "\n".join(o[-300:] for _, o in results))

# 10. K: an input error on rank 1 only (a relative data.dir that resolves in rank 0's working directory but not in
#     rank 1's). Even with Open MPI's abort-on-non-zero-status off, every rank stops, rank 1's message reaches the
#     user, the status is 2, and nothing is written.
good, bad = out("wdir-good"), out("wdir-bad")
os.makedirs(good, exist_ok=True); os.makedirs(bad, exist_ok=True)
os.symlink("/usr/share/datasets/fashion-mnist", good + "/fmnist")
d = out("rank-only")
args = [binary, *SMALL, "--set", "data.dir=fmnist", "--set", "train.steps=5", "--out", d]
# With abort-on-non-zero-status off, mpirun's own exit status is 0 whatever the ranks return: there the check is
# that nothing hangs and the message arrives.
for abort_flags, expect in (([], 2), (["--mca", "orte_abort_on_non_zero_status", "0"], 0)):
    start = time.time()
    try:
        p = subprocess.run([mpirun, *abort_flags, "-n", "1", "-wdir", good, *args, ":", "-n", "1", "-wdir", bad, *args],
                           capture_output=True, text=True, timeout=120)
        rc, log = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, log = None, "hung: still running after 120 s"
    check(f"an input error on rank 1 only{' (abort on non-zero status off)' if abort_flags else ''}: exit {rc} in "
          f"{time.time() - start:.0f}s with rank 1's message naming data.dir, nothing written",
          rc == expect and f"error (rank 1 of 2): data.dir = fmnist is relative to this rank's working directory {bad}" in log
          and not os.path.exists(d), log[-800:])

# 11. N: under mpirun with output redirected (a pipe), no live-progress escape codes, whatever the ranks' stdout is.
env = {k: v for k, v in os.environ.items() if k != "SWIFT_TRAIN_PROGRESS"}
env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
p = subprocess.run(["mpirun", "--oversubscribe", "-n", "2", binary, *SMALL, "--set", "train.global_batch=96",
                    "--set", "train.steps=20", "--out", out("redirected")], capture_output=True, text=True, env=env, timeout=300)
check("mpirun with redirected output: plain progress lines, no \\r\\e[K codes",
      p.returncode == 0 and "\x1b[K" not in p.stdout and "\r" not in p.stdout and "step 20/20" in p.stdout, repr(p.stdout[-300:]))

# 7. Export: full parameters (and optimizer state) as safetensors, read back with names, shapes and values.
ckpt = out("full0") + "/checkpoints/step-00000040"
p = subprocess.run([binary, "export", ckpt, "--out", out("export.safetensors"), "--optimizer-state"], capture_output=True, text=True)
if p.returncode == 0:
    exported, meta = read_safetensors(out("export.safetensors"))
    final, _ = read_safetensors(out("full0") + "/model.safetensors")
    params_equal = all(exported[n] == final[n] for n in final)
    state_names = sorted(n for n in exported if n.startswith("optimizer."))
    shapes_ok = exported["optimizer.exp_avg.layer0.weight"][0] == [64, 784]
    check(f"export: {len(final)} parameters equal the run's final model, {len(state_names)} optimizer tensors with shapes, step {meta.get('step')}",
          params_equal and len(state_names) == 2 * len(final) and shapes_ok and meta.get("step") == "40", p.stdout)
else:
    check("export", False, p.stderr)

# 12. One exit status, 2, for every kind of input error in every command, with a message naming the problem (before,
#     ArgumentParser's usage errors exited 64 and some command errors 1; `--tokens -5` read as a missing value).
for args, needle in [(["sample", ckpt, "--tokens", "-5"], "--tokens must be positive"),
                     (["--bogus"], "Unknown option '--bogus'"),
                     (["export", out("nowhere"), "--out", out("x.safetensors")], f"export {out('nowhere')}: no such file or directory"),
                     (["sample", out("nowhere")], f"sample {out('nowhere')}: no such file or directory"),
                     (["config", "--set", "optimizer=adamw"], "--set optimizer.name=adamw"),
                     (["export", ckpt, "--out", out("no/such/folder/x.safetensors")], "check that the folders in the path exist"),
                     (["--out", "/proc/swift-train-run", "--set", "train.steps=1"], "run directory /proc/swift-train-run: cannot create /proc/swift-train-run: ")]:
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    # export and sample name themselves, not --resume (the usage text of an unknown flag lists --resume itself).
    names_other_command = args[0] in ("export", "sample") and "--resume" in p.stderr
    check(f"swift-train {' '.join(args[:2])}…: exit {p.returncode} naming the problem", p.returncode == 2 and needle in p.stderr
          and not names_other_command and "NSCocoaErrorDomain" not in p.stderr, p.stderr[-400:])

shutil.rmtree(work, ignore_errors=True)
print(f"checkpoint-faults: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
