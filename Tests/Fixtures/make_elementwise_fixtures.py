#!/usr/bin/env python3
"""Reference trajectories for the element-wise optimizers (Tests/OptimizersTests/ElementwiseTorchTests.swift).

Writes Tests/OptimizersTests/Fixtures/elementwise.json. Needs PyTorch and NumPy; keep them outside the repository:
    python3 -m venv ~/torchenv && ~/torchenv/bin/pip install torch numpy
    ~/torchenv/bin/python Tests/Fixtures/make_elementwise_fixtures.py
With --numpy-only (NumPy alone, no torch) it recomputes only the NumPy-reference cases and keeps every torch case
of the existing file, so an optimizer without a torch class can be added without installing torch.

Layout matches the Swift test: one flat float32 vector of WEIGHT (3x4, weight decay `weight_decay`) followed by
BIAS (4, no weight decay, learning rate x `bias_lr_scale`). Every case replays the same initial parameters and the
same STEPS gradients (seeded; step 5 is all zero, step 9 flips every sign of step 8, step 14 flips and halves step 13,
step 18 repeats step 17 scaled, step 20 has exact zeros in every third element) and records the parameters after
every step. torch.optim classes run on CPU in float32 with foreach=False (the single-tensor reference code path);
Lion, signSGD, Signum and AdEMAMix have no torch class and follow the papers' formulas in float64 NumPy (AdEMAMix:
apple/ml-ademamix's reference step, including its α and β₃ warmup schedulers).
"""
import json
import math
import os
import sys
import numpy as np

WEIGHT_SHAPE = (3, 4)
BIAS_COUNT = 4
STEPS = 24
BIAS_LR_SCALE = 0.5
SEED = 20240611
OUT = os.path.join(os.path.dirname(__file__), "..", "OptimizersTests", "Fixtures", "elementwise.json")


def make_inputs():
    rng = np.random.default_rng(SEED)
    n = int(np.prod(WEIGHT_SHAPE)) + BIAS_COUNT
    initial = rng.standard_normal(n).astype(np.float32)
    scales = rng.uniform(0.1, 2.0, size=(STEPS, 1))
    grads = (rng.standard_normal((STEPS, n)) * scales).astype(np.float32)
    grads[5] = 0
    grads[9] = -grads[8]
    grads[14] = -0.5 * grads[13]
    grads[18] = 1.5 * grads[17]
    grads[20][::3] = 0
    return initial, grads


def split(flat):
    w = int(np.prod(WEIGHT_SHAPE))
    return flat[:w].reshape(WEIGHT_SHAPE), flat[w:]


def run_torch(make, lr, wd, initial, grads, l2_by_hand=False):
    """`make(groups)` builds the torch optimizer. With l2_by_hand the optimizer has no weight_decay (Rprop) and
    g + wd*p is fed as the gradient, which is the Swift extension's definition."""
    w0, b0 = split(initial)
    w = torch.tensor(w0, dtype=torch.float32, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float32, requires_grad=True)
    if l2_by_hand:
        groups = [{"params": [w], "lr": lr}, {"params": [b], "lr": lr * BIAS_LR_SCALE}]
    else:
        groups = [{"params": [w], "lr": lr, "weight_decay": wd},
                  {"params": [b], "lr": lr * BIAS_LR_SCALE, "weight_decay": 0.0}]
    opt = make(groups)
    out = []
    for g in grads:
        gw, gb = split(g)
        gw = torch.tensor(gw, dtype=torch.float32)
        if l2_by_hand and wd != 0:
            gw = gw.add(w.detach(), alpha=wd)
        w.grad = gw
        b.grad = torch.tensor(gb, dtype=torch.float32)
        opt.step()
        out.append(np.concatenate([w.detach().numpy().ravel(), b.detach().numpy().ravel()]))
    return out


def run_numpy(step, lr, wd, initial, grads, state_count):
    """Float64 reference of a paper formula; `step(p, g, states, lr, wd)` updates in place."""
    w_count = int(np.prod(WEIGHT_SHAPE))
    p = initial.astype(np.float64)
    states = [np.zeros_like(p) for _ in range(state_count)]
    lrs = np.where(np.arange(p.size) < w_count, lr, lr * BIAS_LR_SCALE)
    wds = np.where(np.arange(p.size) < w_count, wd, 0.0)
    out = []
    for g in grads:
        step(p, g.astype(np.float64), states, lrs, wds)
        out.append(p.astype(np.float32))
    return out


def lion(beta1, beta2):
    def step(p, g, s, lr, wd):
        m = s[0]
        c = beta1 * m + (1 - beta1) * g
        p[:] = p * (1 - lr * wd) - lr * np.sign(c)
        m[:] = beta2 * m + (1 - beta2) * g
    return step


def signum(beta):
    def step(p, g, s, lr, wd):
        if beta > 0:
            s[0][:] = beta * s[0] + (1 - beta) * g
            d = s[0]
        else:
            d = g
        p[:] = p * (1 - lr * wd) - lr * np.sign(d)
    return step


def ademamix(beta1, beta2, beta3_final, alpha_final, eps, alpha_warmup=0, beta3_warmup=0):
    """apple/ml-ademamix AdEMAMix.step: fast EMA m1 (bias-corrected), slow EMA m2 (not), Adam's v; decay added to
    the update (θ ← θ − γ(u + λθ)); warmups of α (linear) and β₃ (linear in half-life) when given (0: none)."""
    def f(beta, eps=1e-8):
        return math.log(0.5) / math.log(beta + eps) - 1

    def f_inv(t):
        return math.pow(0.5, 1 / (t + 1))

    t = [0]

    def step(p, g, s, lr, wd):
        t[0] += 1
        n = t[0]
        alpha = alpha_final * n / alpha_warmup if n < alpha_warmup else alpha_final
        if n < beta3_warmup:
            a = n / beta3_warmup
            beta3 = f_inv((1 - a) * f(beta1) + a * f(beta3_final))
        else:
            beta3 = beta3_final
        m1, m2, v = s
        m1[:] = beta1 * m1 + (1 - beta1) * g
        m2[:] = beta3 * m2 + (1 - beta3) * g
        v[:] = beta2 * v + (1 - beta2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - beta2 ** n) + eps
        update = (m1 / (1 - beta1 ** n) + alpha * m2) / denom + wd * p
        p[:] = p - lr * update
    return step


def f32(values):
    return [float(str(np.float32(v))) for v in np.asarray(values, dtype=np.float32).ravel()]


def cases():
    O = torch.optim if torch is not None else None
    nf = {"foreach": False}
    T = "torch"
    return [
        # name, swift-train optimizer name, its hyperparameter keys (optimizer.<key>; flags as 0/1), lr, weight decay, reference kind, builder
        ("sgd_plain", "sgd", {}, 0.1, 0.1, T, lambda g: O.SGD(g, **nf)),
        ("sgd_momentum", "sgd", {"momentum": 0.9}, 0.05, 0.1, T, lambda g: O.SGD(g, momentum=0.9, **nf)),
        ("sgd_dampening", "sgd", {"momentum": 0.9, "dampening": 0.1}, 0.05, 0.1, T,
         lambda g: O.SGD(g, momentum=0.9, dampening=0.1, **nf)),
        ("sgd_nesterov", "sgd", {"momentum": 0.9, "nesterov": 1}, 0.05, 0.1, T,
         lambda g: O.SGD(g, momentum=0.9, nesterov=True, **nf)),
        ("adagrad_default", "adagrad", {}, 0.1, 0.1, T, lambda g: O.Adagrad(g, **nf)),
        ("adagrad_decay_accumulator", "adagrad", {"lr_decay": 0.05, "initial_accumulator": 0.1, "eps": 1e-10},
         0.1, 0.1, T, lambda g: O.Adagrad(g, lr_decay=0.05, initial_accumulator_value=0.1, eps=1e-10, **nf)),
        ("adadelta", "adadelta", {"rho": 0.9, "eps": 1e-6}, 1.0, 0.1, T, lambda g: O.Adadelta(g, **nf)),
        ("adadelta_rho", "adadelta", {"rho": 0.5, "eps": 1e-4}, 0.5, 0.1, T,
         lambda g: O.Adadelta(g, rho=0.5, eps=1e-4, **nf)),
        ("rmsprop_plain", "rmsprop", {}, 0.01, 0.1, T, lambda g: O.RMSprop(g, **nf)),
        ("rmsprop_centered", "rmsprop", {"centered": 1}, 0.01, 0.1, T, lambda g: O.RMSprop(g, centered=True, **nf)),
        ("rmsprop_momentum", "rmsprop", {"momentum": 0.9}, 0.003, 0.1, T,
         lambda g: O.RMSprop(g, momentum=0.9, **nf)),
        ("rmsprop_centered_momentum", "rmsprop", {"alpha": 0.9, "momentum": 0.5, "centered": 1}, 0.01, 0.1, T,
         lambda g: O.RMSprop(g, alpha=0.9, momentum=0.5, centered=True, **nf)),
        ("adam_l2", "adam", {}, 0.05, 0.1, T, lambda g: O.Adam(g, **nf)),
        ("adamw", "adamw", {}, 0.05, 0.1, T, lambda g: O.AdamW(g, **nf)),
        ("adam_amsgrad_l2", "adam", {"amsgrad": 1}, 0.05, 0.1, T,
         lambda g: O.Adam(g, amsgrad=True, **nf)),
        ("adamw_amsgrad", "adamw", {"amsgrad": 1, "beta1": 0.8, "beta2": 0.99}, 0.05, 0.1, T,
         lambda g: O.AdamW(g, betas=(0.8, 0.99), amsgrad=True, **nf)),
        ("adamax", "adamax", {}, 0.05, 0.1, T, lambda g: O.Adamax(g, **nf)),
        ("nadam_l2", "nadam", {}, 0.05, 0.1, T, lambda g: O.NAdam(g, **nf)),
        ("nadam_decoupled", "nadam", {"decoupled_weight_decay": 1}, 0.05, 0.1, T,
         lambda g: O.NAdam(g, decoupled_weight_decay=True, **nf)),
        ("radam_l2", "radam", {}, 0.05, 0.1, T, lambda g: O.RAdam(g, **nf)),
        ("radam_decoupled", "radam", {"decoupled_weight_decay": 1, "beta2": 0.99}, 0.05, 0.1, T,
         lambda g: O.RAdam(g, betas=(0.9, 0.99), decoupled_weight_decay=True, **nf)),
        ("rprop_default", "rprop", {}, 0.05, 0.0, T, lambda g: O.Rprop(g, **nf)),
        ("rprop_bounded_l2", "rprop", {"eta_minus": 0.3, "eta_plus": 1.5, "step_size_min": 0.01, "step_size_max": 0.08},
         0.05, 0.1, "torch_l2_by_hand", lambda g: O.Rprop(g, etas=(0.3, 1.5), step_sizes=(0.01, 0.08), **nf)),
        ("lion", "lion", {"beta1": 0.9, "beta2": 0.99}, 0.01, 0.1, "numpy", (lion(0.9, 0.99), 1)),
        ("signsgd", "signsgd", {}, 0.01, 0.1, "numpy", (signum(0.0), 0)),
        ("signum", "signum", {"momentum": 0.9}, 0.01, 0.1, "numpy", (signum(0.9), 1)),
        ("ademamix", "ademamix", {"beta3": 0.99, "ademamix_alpha": 5.0}, 0.01, 0.1, "numpy",
         (lambda: ademamix(0.9, 0.999, 0.99, 5.0, 1e-8), 3)),
        ("ademamix_warmup", "ademamix", {"beta3": 0.999, "ademamix_alpha": 8.0, "alpha_warmup": 10, "beta3_warmup": 16},
         0.01, 0.1, "numpy", (lambda: ademamix(0.9, 0.999, 0.999, 8.0, 1e-8, alpha_warmup=10, beta3_warmup=16), 3)),
    ]


def main():
    numpy_only = "--numpy-only" in sys.argv
    initial, grads = make_inputs()
    kept = {}
    if numpy_only:
        with open(OUT) as f:
            old = json.load(f)
        assert old["initial"] == f32(initial), "inputs changed: regenerate everything with torch"
        kept = {c["name"]: c for c in old["cases"] if c["reference"] != "numpy-float64"}
    else:
        torch.manual_seed(0)
    out_cases = []
    for name, optimizer, hyper, lr, wd, kind, builder in cases():
        if numpy_only and kind != "numpy":
            out_cases.append(kept[name])
            continue
        if kind == "numpy":
            step, state_count = builder
            if callable(step) and step.__code__.co_argcount == 0:  # stateful reference: one instance per run
                step = step()
            params = run_numpy(step, lr, wd, initial, grads, state_count)
        else:
            params = run_torch(builder, lr, wd, initial, grads, l2_by_hand=(kind == "torch_l2_by_hand"))
        out_cases.append({"name": name, "optimizer": optimizer, "hyper": hyper, "lr": lr, "weight_decay": wd,
                          "reference": "numpy-float64" if kind == "numpy" else "torch",
                          "params": [f32(p) for p in params]})
    doc = {
        "generator": "Tests/Fixtures/make_elementwise_fixtures.py",
        "torch_version": old["torch_version"] if numpy_only else torch.__version__,
        "seed": SEED,
        "weight_count": int(np.prod(WEIGHT_SHAPE)),
        "bias_count": BIAS_COUNT,
        "bias_lr_scale": BIAS_LR_SCALE,
        "initial": f32(initial),
        "grads": [f32(g) for g in grads],
        "cases": out_cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(out_cases)} cases, {os.path.getsize(OUT)} bytes to {os.path.normpath(OUT)}")


try:
    import torch
except ImportError:
    torch = None  # --numpy-only needs no torch

if __name__ == "__main__":
    main()
