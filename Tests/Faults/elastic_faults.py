#!/usr/bin/env python3
"""Elastic restarts and the hang watchdog with real processes under mpirun (run by launch/test).

1. A 3-rank run with one rank SIGSTOPped: every other rank's watchdog (train.hang_timeout_s) ends the job within the
   timeout plus a few seconds, naming the stopped rank; mpirun exits 4.
2. launch/elastic: a 4-rank run with a random rank SIGKILLed at a random step finishes on 3 ranks from the latest
   checkpoint, with the uninterrupted run's steps and examples, its final loss within tolerance, bit-identical to a
   run that was paused at that checkpoint on 4 ranks and resumed on 3, and at most checkpoint.every steps recomputed.
3. launch/elastic with a SIGSTOPped rank: the watchdog ends the attempt and the supervisor finishes on 2 ranks.

Each check prints `ok` or `FAIL`; the last line is "elastic-faults: N passed, M failed".
Usage: elastic_faults.py REPO_ROOT   (SWIFT_TRAIN_BINARY: the swift-train to test; default the release build)
"""
import json, os, random, re, signal, struct, subprocess, sys, tempfile, time

repo = os.path.abspath(sys.argv[1])
binary = os.path.abspath(os.environ.get("SWIFT_TRAIN_BINARY", os.path.join(repo, ".build/release/swift-train")))
mpirun = os.path.join(repo, "launch/mpirun")
elastic = os.path.join(repo, "launch/elastic")
work = tempfile.mkdtemp(prefix="swift-train-elastic-")
passed = failed = 0
seed = int(os.environ.get("ELASTIC_TEST_SEED", time.time_ns() % 1_000_000))
rng = random.Random(seed)
print(f"elastic-faults: seed {seed} (ELASTIC_TEST_SEED={seed} repeats these choices)", flush=True)
# Evaluating the test set after every step makes a step take tens of milliseconds, so a kill watched for in
# metrics.jsonl lands well before the end; it changes no training arithmetic.
SMALL = ["--set", "model.hidden=[64, 32]", "--set", "train.global_batch=96", "--set", "train.log_every=1",
         "--set", "train.eval_every=1", "--set", "schedule.warmup_steps=5", "--set", "output.save_model=true"]


def check(name, ok, detail=""):
    global passed, failed
    if ok: passed += 1
    else: failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)


def out(name): return os.path.join(work, name)


def run(ranks, *args, timeout=300):
    p = subprocess.run([mpirun, "-n", str(ranks), binary, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def rank_pid(run_dir, rank):
    """The pid of the swift-train rank `rank` writing to `run_dir` (from /proc: its command line and environment)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit(): continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            if os.fsencode(binary) not in cmd or os.fsencode(run_dir) not in cmd: continue
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError: continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env: return int(pid)
    return None


def logged_steps(run_dir):
    try: lines = open(os.path.join(run_dir, "metrics.jsonl")).read().splitlines()
    except FileNotFoundError: return []
    steps = []
    for line in lines:
        try: o = json.loads(line)
        except ValueError: continue
        if "loss" in o and isinstance(o.get("step"), int): steps.append(o["step"])
    return steps


def wait_for_step(proc, run_dir, step, limit=240):
    """Polls metrics.jsonl until it logs `step` (or later); False if the job ended or time ran out first."""
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None:
        steps = logged_steps(run_dir)
        if steps and steps[-1] >= step: return True
        time.sleep(0.005)
    return False


def tensors(path):
    with open(path, "rb") as f: data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: (v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def summary(run_dir): return json.load(open(os.path.join(run_dir, "summary.json")))


def restarts(run_dir):
    try: return [json.loads(l) for l in open(os.path.join(run_dir, "restarts.jsonl"))]
    except FileNotFoundError: return []


def gone(pid): return pid is None or not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


# 1. The watchdog: SIGSTOP rank 1 of 3; the job must end within the timeout plus a few seconds.
TIMEOUT = 5
d = out("hang")
p = subprocess.Popen([mpirun, "-n", "3", binary, *SMALL, "--set", "train.steps=100000", "--set", "train.eval_every=0",
                      "--set", f"train.hang_timeout_s={TIMEOUT}", "--out", d],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
started = wait_for_step(p, d, 20)
pid = rank_pid(d, 1)
if started and pid:
    os.kill(pid, signal.SIGSTOP)
    t0 = time.time()
    try: log, _ = p.communicate(timeout=TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        p.kill(); log, _ = p.communicate()
    elapsed = time.time() - t0
    # A few seconds: the monitor's beat (≤ 0.5 s here), the 2 s heartbeat comparison, MPI_Abort's teardown.
    check(f"watchdog: SIGSTOP of rank 1 of 3 ends the job in {elapsed:.1f} s (timeout {TIMEOUT} s, allowed +15 s), exit 4",
          p.returncode == 4 and elapsed <= TIMEOUT + 15, f"exit {p.returncode}\n{log[-1500:]}")
    check("watchdog: the message names rank 1 as stopped, and the call and step the others wait in",
          # Ranks 0 and 2 time out alike; whichever fires first aborts the job, so either may be the one that reports.
          "stopped progressing: rank 1 (no heartbeat" in log and re.search(r"swift-train watchdog: rank [02] waited", log)
          and "at step" in log,
          "\n".join(l for l in log.splitlines() if "watchdog" in l or "heartbeat" in l or "stopped" in l)[-1500:])
    time.sleep(1)
    check("watchdog: the stopped rank is gone too (mpirun killed it)", gone(pid), f"pid {pid} still there")
    if not gone(pid): os.kill(pid, signal.SIGKILL)
else:
    p.kill()
    check("watchdog: the 3-rank run started", False, f"started {started} pid {pid}\n{p.communicate()[0][-1500:]}")

# 2. Elastic restart after a SIGKILLed rank: 4 ranks → 3.
STEPS, EVERY = 40, 5
common = SMALL + ["--set", f"train.steps={STEPS}", "--set", f"checkpoint.every={EVERY}"]
rc, log = run(4, *common, "--out", out("full4"))
check("uninterrupted 4-rank run", rc == 0, log[-800:])
kill_step, victim = rng.randint(EVERY + 1, STEPS - 3 * EVERY), rng.randint(1, 3)
d = out("elastic")
p = subprocess.Popen([elastic, "--min-ranks", "2", "--max-ranks", "4", "--max-restarts", "2", "--out", d, "--", *common],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "SWIFT_TRAIN_BINARY": binary})
reached = wait_for_step(p, d, kill_step)
pid = rank_pid(d, victim)
if reached and pid: os.kill(pid, signal.SIGKILL)
log, _ = p.communicate(timeout=600)
entries = restarts(d)
check(f"elastic: rank {victim} SIGKILLed at step ≥ {kill_step}, the supervisor restarted once and finished (exit 0)",
      reached and pid and p.returncode == 0 and len(entries) == 1, f"reached {reached} pid {pid} exit {p.returncode} restarts {entries}\n{log[-1500:]}")
if entries and p.returncode == 0:
    e = entries[0]
    resumed = e["resumed_step"]
    check("elastic: restarts.jsonl records the cause, exit status, 4 → 3 ranks and the checkpoint resumed",
          "died (signal 9)" in e["cause"] and e["old_world_size"] == 4 and e["new_world_size"] == 3 and e["exit_status"] != 0
          and resumed and resumed % EVERY == 0 and e["resumed_checkpoint"].endswith(f"step-{resumed:08d}"), str(e))
    lost = e["last_logged_step"] - resumed
    check(f"elastic: {lost} steps recomputed (logged {e['last_logged_step']}, resumed {resumed}) ≤ checkpoint.every = {EVERY}",
          0 <= lost <= EVERY, str(e))
    a, b = summary(out("full4")), summary(d)
    check("elastic: the finished run has the uninterrupted run's steps and examples, on 3 ranks",
          a["steps"] == b["steps"] == STEPS and a["epochs"] == b["epochs"] and b["world_size"] == 3
          and logged_steps(d) == list(range(1, STEPS + 1)), f"{a['steps']} {b['steps']} {a['epochs']} {b['epochs']} {b['world_size']} {logged_steps(d)}")
    # Tolerance: 3 ranks sum the gradient in another order than 4, so float rounding differs from the resumed
    # step on; over ≤ 35 steps of AdamW on this MLP that moves the loss by far less than 1 % (a wrong batch,
    # data position or optimizer state moves it by several %).
    la, lb = a["final_train_loss"], b["final_train_loss"]
    check(f"elastic: final training loss {lb:.5f} within 1 % of the uninterrupted {la:.5f}", abs(la - lb) <= 0.01 * abs(la), f"{la} {lb}")
    # The reference: 4 ranks paused at the same checkpoint, resumed on 3 — the elastic run must equal it bit for bit.
    rc1, log1 = run(4, *common, "--set", f"train.stop_at={resumed}", "--out", out("ref"))
    rc2, log2 = run(3, "--resume", out("ref"), *common)
    same = rc1 == rc2 == 0 and tensors(out("ref") + "/model.safetensors") == tensors(d + "/model.safetensors")
    check(f"elastic: bit-identical to 4 ranks paused at step {resumed} and resumed on 3", same, f"rc {rc1} {rc2}\n{log2[-800:]}")

# 3. Elastic restart after a hang: SIGSTOP one rank of 3; the watchdog ends the attempt, the supervisor goes on with 2.
d = out("elastic-hang")
p = subprocess.Popen([elastic, "--min-ranks", "2", "--max-ranks", "3", "--out", d, "--", *SMALL, "--set", "train.steps=60",
                      "--set", "checkpoint.every=5", "--set", f"train.hang_timeout_s={TIMEOUT}"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "SWIFT_TRAIN_BINARY": binary})
reached = wait_for_step(p, d, 12)
pid = rank_pid(d, 2)
if reached and pid: os.kill(pid, signal.SIGSTOP)
log, _ = p.communicate(timeout=600)
entries = restarts(d)
check("elastic: a SIGSTOPped rank of 3 → the watchdog ends the attempt → finished on 2 ranks",
      reached and pid and p.returncode == 0 and len(entries) == 1 and entries[0]["cause"].startswith("hang (watchdog): rank 2")
      and entries[0]["new_world_size"] == 2 and summary(d)["world_size"] == 2 and summary(d)["steps"] == 60,
      f"reached {reached} pid {pid} exit {p.returncode} {entries}\n{log[-1500:]}")
if pid and not gone(pid): os.kill(pid, signal.SIGKILL)

print(f"elastic-faults: {passed} passed, {failed} failed", flush=True)
sys.exit(1 if failed else 0)
