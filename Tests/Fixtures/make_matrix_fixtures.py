#!/usr/bin/env python3
"""Float64 references for the matrix and large-batch optimizers (Muon, Newton–Schulz, Shampoo, LARS, LAMB).

Writes Tests/MatrixOptimizersTests/Fixtures/matrix.json. Each formula is written out directly from the papers /
docs/optimizers-matrix.md in numpy float64; nothing here shares code with the Swift implementation.

Inputs (initial parameters, gradients) and hyperparameters are rounded to float32 first, so the Swift float32 replay
starts from exactly the same numbers and the only difference left is float32 arithmetic.

Usage: python3 Tests/Fixtures/make_matrix_fixtures.py
"""
import json
import os

import numpy as np

STEPS = 20
ZERO_STEP = 6  # 0-based index of the all-zero gradient step
SEED = 20240611


def f32(x):
    """Round to float32 and back (arrays or scalars)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32).astype(np.float64)
    return float(np.float32(x))


# ----------------------------------------------------------------------------------------------------------------
# Problem: two matrices (one wide, one tall, so both NS orientations run) and a bias vector.
TENSORS = [
    {"name": "w1", "shape": [6, 10], "role": "matrix"},
    {"name": "w2", "shape": [10, 4], "role": "matrix"},
    {"name": "b1", "shape": [6], "role": "bias"},
]

rng = np.random.default_rng(SEED)
initial = {t["name"]: f32(rng.normal(0.0, 0.5, size=t["shape"])) for t in TENSORS}
grads = []
for step in range(STEPS):
    if step == ZERO_STEP:
        grads.append({t["name"]: np.zeros(t["shape"]) for t in TENSORS})
    else:
        # Vary the scale between steps so normalisation and trust ratios matter.
        scale = 0.5 + rng.random()
        grads.append({t["name"]: f32(rng.normal(0.0, scale, size=t["shape"])) for t in TENSORS})


# ----------------------------------------------------------------------------------------------------------------
# Newton–Schulz
KELLER = (3.4445, -4.7750, 2.0315)
POLAR_RAW = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]
# Safety factor 1.01 on every triple except the last, as in the Polar Express reference code.
POLAR = [(a / 1.01, b / 1.01 ** 3, c / 1.01 ** 5) for (a, b, c) in POLAR_RAW[:-1]] + [POLAR_RAW[-1]]


def triples(kind, steps):
    if kind == "quintic":
        return [KELLER] * steps
    return [POLAR[min(i, len(POLAR) - 1)] for i in range(steps)]


def newton_schulz(G, steps, kind, eps):
    X = G.T if G.shape[0] > G.shape[1] else G
    factor = 1.01 if kind == "polar_express" else 1.0
    X = X / (np.linalg.norm(X) * factor + eps)
    for a, b, c in triples(kind, steps):
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X.T if G.shape[0] > G.shape[1] else X


# ----------------------------------------------------------------------------------------------------------------
# Optimizers: each takes (params dict, grads list, hyper) and returns the flat parameters after every step.

def flat(params, names):
    return np.concatenate([params[n].ravel() for n in names])


def decay_for(role, wd):
    # Default decay policy: matrices decay, biases and norm gains do not.
    return wd if role in ("matrix", "embedding", "head") else 0.0


def run_muon(names, h):
    lr, wd, beta = f32(h["lr"]), f32(h["weight_decay"]), f32(h["muon_momentum"])
    p = {n: initial[n].copy() for n in names}
    m = {n: np.zeros_like(p[n]) for n in names}
    out = []
    for t in range(STEPS):
        for n in names:
            g = grads[t][n]
            rows, cols = p[n].shape
            m[n] = beta * m[n] + (1 - beta) * g
            u = (1 - beta) * g + beta * m[n] if h["muon_nesterov"] else m[n]
            O = newton_schulz(u, h["ns_steps"], h["ns_coefficients"], f32(h["muon_eps"]))
            if h["muon_scale"] == "original":
                s = np.sqrt(max(1.0, rows / cols))
            else:
                s = 0.2 * np.sqrt(max(rows, cols))
            p[n] = p[n] * (1 - lr * wd) - lr * s * O
        out.append(flat(p, names))
    return out


def inv_root(S, damping, power=4):
    w, V = np.linalg.eigh(S)
    w = (np.maximum(w, 0) + damping) ** (-1.0 / power)
    return (V * w) @ V.T


def run_shampoo(names, h):
    lr, wd = f32(h["lr"]), f32(h["weight_decay"])
    b1, b2, eps = f32(h["beta1"]), f32(h["beta2"]), f32(h["eps"])
    damping, k = h["damping"], h["precondition_frequency"]
    roles = {t["name"]: t["role"] for t in TENSORS}
    p = {n: initial[n].copy() for n in names}
    L = {n: np.zeros((p[n].shape[0],) * 2) for n in names if p[n].ndim == 2}
    R = {n: np.zeros((p[n].shape[1],) * 2) for n in names if p[n].ndim == 2}
    Lr, Rr = {}, {}
    s = {n: np.zeros_like(p[n]) for n in names if p[n].ndim == 1}
    m = {n: np.zeros_like(p[n]) for n in names}
    v = {n: np.zeros_like(p[n]) for n in names}
    out = []
    for t in range(1, STEPS + 1):
        for n in names:
            g = grads[t - 1][n]
            if p[n].ndim == 2:
                L[n] += g @ g.T
                R[n] += g.T @ g
                if (t - 1) % k == 0:
                    Lr[n], Rr[n] = inv_root(L[n], damping), inv_root(R[n], damping)
                D = Lr[n] @ g @ Rr[n]
            else:
                s[n] += g * g
                D = g / np.sqrt(s[n] + damping)
            if h["graft"] != "none":
                if h["graft"] == "adam":
                    m[n] = b1 * m[n] + (1 - b1) * g
                    v[n] = b2 * v[n] + (1 - b2) * g * g
                    A = (m[n] / (1 - b1 ** t)) / (np.sqrt(v[n] / (1 - b2 ** t)) + eps)
                else:
                    A = g
                nd = np.linalg.norm(D)
                if nd > 0:
                    D = D * (np.linalg.norm(A) / nd)
            lam = decay_for(roles[n], wd)
            p[n] = p[n] * (1 - lr * lam) - lr * D
        out.append(flat(p, names))
    return out


def run_lars(names, h):
    lr, wd, mu, eta = f32(h["lr"]), f32(h["weight_decay"]), f32(h["momentum"]), f32(h["trust_coefficient"])
    roles = {t["name"]: t["role"] for t in TENSORS}
    p = {n: initial[n].copy() for n in names}
    b = {n: np.zeros_like(p[n]) for n in names}
    out = []
    for t in range(STEPS):
        for n in names:
            g = grads[t][n]
            excluded = h["exclude_bias_and_norm"] and roles[n] in ("bias", "norm")
            lam = 0.0 if excluded else decay_for(roles[n], wd)
            npn, ng = np.linalg.norm(p[n]), np.linalg.norm(g)
            local = 1.0 if (excluded or npn == 0 or ng == 0) else eta * npn / (ng + lam * npn)
            b[n] = mu * b[n] + lr * local * (g + lam * p[n])
            p[n] = p[n] - b[n]
        out.append(flat(p, names))
    return out


def run_lamb(names, h):
    lr, wd = f32(h["lr"]), f32(h["weight_decay"])
    b1, b2, eps = f32(h["beta1"]), f32(h["beta2"]), f32(h["eps"])
    roles = {t["name"]: t["role"] for t in TENSORS}
    p = {n: initial[n].copy() for n in names}
    m = {n: np.zeros_like(p[n]) for n in names}
    v = {n: np.zeros_like(p[n]) for n in names}
    out = []
    for t in range(1, STEPS + 1):
        for n in names:
            g = grads[t - 1][n]
            excluded = h["exclude_bias_and_norm"] and roles[n] in ("bias", "norm")
            lam = 0.0 if excluded else decay_for(roles[n], wd)
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            bc1 = 1 - b1 ** t if h["lamb_bias_correction"] else 1.0
            bc2 = 1 - b2 ** t if h["lamb_bias_correction"] else 1.0
            r = (m[n] / bc1) / (np.sqrt(v[n] / bc2) + eps) + lam * p[n]
            npn, nr = np.linalg.norm(p[n]), np.linalg.norm(r)
            ratio = npn / nr if (npn > 0 and nr > 0) else 1.0
            if h["max_trust_ratio"] > 0:  # 0: no clip, as in optimizer.max_trust_ratio
                ratio = min(ratio, f32(h["max_trust_ratio"]))
            if excluded:
                ratio = 1.0
            p[n] = p[n] - lr * ratio * r
        out.append(flat(p, names))
    return out


MUON = dict(lr=0.05, weight_decay=0.1, muon_momentum=0.95, muon_nesterov=True, ns_steps=5, ns_coefficients="quintic",
            muon_eps=1e-7, muon_scale="original")
SHAMPOO = dict(lr=0.1, weight_decay=0.01, precondition_frequency=1, damping=1e-4, graft="none",
               beta1=0.9, beta2=0.999, eps=1e-8)
LARS = dict(lr=0.1, weight_decay=0.01, momentum=0.9, trust_coefficient=0.2, exclude_bias_and_norm=True)
LAMB = dict(lr=0.02, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-6, lamb_bias_correction=True,
            max_trust_ratio=0.0, exclude_bias_and_norm=True)

MATRICES = ["w1", "w2"]
ALL = ["w1", "w2", "b1"]
CASES = [
    ("muon_original_nesterov", "muon", MATRICES, MUON),
    ("muon_match_rms_nesterov", "muon", MATRICES, {**MUON, "muon_scale": "match_rms"}),
    ("muon_original_plain", "muon", MATRICES, {**MUON, "muon_nesterov": False}),
    ("muon_match_rms_plain", "muon", MATRICES, {**MUON, "muon_nesterov": False, "muon_scale": "match_rms"}),
    ("muon_polar_express", "muon", MATRICES, {**MUON, "ns_coefficients": "polar_express"}),
    ("shampoo", "shampoo", ALL, SHAMPOO),
    # Stale roots excite directions that were in the statistics' null space when the roots were taken; there the
    # float32 statistics hold rounding noise (~1e-7·‖R‖) instead of exact zeros, which moves (λ + δ)^(-1/4) by
    # about noise/(4δ). With δ = 1e-2 that is far below 1e-5; the δ = 1e-4 case below gets a wider tolerance.
    ("shampoo_graft_adam_freq3", "shampoo", ALL,
     {**SHAMPOO, "graft": "adam", "precondition_frequency": 3, "damping": 1e-2}),
    ("shampoo_graft_sgd", "shampoo", ALL, {**SHAMPOO, "graft": "sgd"}),
    ("shampoo_graft_adam", "shampoo", ALL, {**SHAMPOO, "graft": "adam"}),
    ("shampoo_freq3", "shampoo", ALL, {**SHAMPOO, "precondition_frequency": 3}),
    ("lars", "lars", ALL, LARS),
    ("lars_no_exclusion", "lars", ALL, {**LARS, "exclude_bias_and_norm": False}),
    ("lamb", "lamb", ALL, LAMB),
    ("lamb_clipped", "lamb", ALL, {**LAMB, "max_trust_ratio": 0.3}),
    ("lamb_no_bias_correction", "lamb", ALL, {**LAMB, "lamb_bias_correction": False, "exclude_bias_and_norm": False}),
]
RUNNERS = {"muon": run_muon, "shampoo": run_shampoo, "lars": run_lars, "lamb": run_lamb}


def r12(values):
    """12 significant digits: far below float32 resolution, keeps the file small."""
    return [float("%.12g" % x) for x in np.asarray(values).ravel()]


def main():
    cases = []
    for name, kind, names, hyper in CASES:
        history = RUNNERS[kind](names, hyper)
        cases.append({"name": name, "optimizer": kind, "tensors": names, "hyper": hyper,
                      "params": [r12(x) for x in history]})

    # Stand-alone NS references on the first non-zero momentum-like inputs (both orientations, both schedules).
    ns_cases = []
    for kind in ("quintic", "polar_express"):
        for n in MATRICES:
            G = grads[0][n]
            ns_cases.append({"coefficients": kind, "shape": list(G.shape), "steps": 5, "eps": 1e-7,
                             "input": r12(G), "output": r12(newton_schulz(G, 5, kind, f32(1e-7)))})

    doc = {
        "generator": "Tests/Fixtures/make_matrix_fixtures.py",
        "seed": SEED,
        "steps": STEPS,
        "zero_step": ZERO_STEP,
        "tensors": TENSORS,
        "initial": {n: r12(v) for n, v in initial.items()},
        "grads": [{n: r12(v) for n, v in g.items()} for g in grads],
        "cases": cases,
        "newton_schulz": ns_cases,
    }
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "MatrixOptimizersTests", "Fixtures", "matrix.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
