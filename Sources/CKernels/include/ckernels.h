// Hand-vectorised element-wise kernels that Swift cannot express: non-temporal (streaming) stores, which skip the
// read-for-ownership of destination cache lines when a buffer is far larger than the cache. Each has a plain Swift
// twin in the Optimizers module that tests compare against.
#ifndef SWIFT_TRAIN_CKERNELS_H
#define SWIFT_TRAIN_CKERNELS_H
#include <stddef.h>

/// One Adam/AdamW step over n elements (torch.optim semantics):
///   g' = g + l2·θ;  m ← m + w1·(g' − m);  v ← β₂·v + w2·g'²;  θ ← θ·decay − step·m / (√v·inv_bc2_sqrt + ε)
/// with w1 = 1 − β₁, w2 = 1 − β₂, step = γ/bc₁, inv_bc2_sqrt = 1/√bc₂, decay = 1 − γλ (AdamW) or 1 (Adam).
/// `streaming` != 0 uses non-temporal stores for θ, m and v (for buffers much larger than the last-level cache).
void swt_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                     float decay, float l2, float w1, float beta2, float w2,
                     float step, float inv_bc2_sqrt, float eps, int streaming);

/// Σ x[i]² over n floats, accumulated in double (8 partial sums per vector lane, so the order differs from a
/// sequential sum by rounding only); non-finite if any element is.
double swt_sum_squares(const float *x, size_t n);

/// dx[i] += (x[i] > 0 ? dy[i] : 0) — ReLU backward without a branch per element (a data-dependent branch on the sign
/// of activations mispredicts about half the time).
void swt_relu_backward_add(float *dx, const float *dy, const float *x, size_t n);

/// dst[j] += Σ_r src[r·ld + j] for j < cols, r < rows — the bias gradient (column sums of dy).
void swt_column_sums_add(float *dst, const float *src, size_t rows, size_t cols, size_t ld);

/// dst[r] += Σ_j src[r·ld + j] for r < rows, j < cols — the bias gradient in feature-major layout (row sums of dyᵀ);
/// 8-wide partial sums, so the order differs from a sequential sum by rounding only.
void swt_row_sums_add(float *dst, const float *src, size_t rows, size_t cols, size_t ld);

/// GELU (tanh approximation) without libm, the same operations in the same order as the Swift twins
/// `geluFastForwardSwift`/`geluFastBackwardSwift` in Sources/Tensors/FastGELU.swift (bit-identical results):
///   y = x·r,   dx += dy·(r + 2·x·du·(q·r)·r),   q = exp(−2u), r = 1/(1 + q), u = √(2/π)(x + 0.044715x³).
void swt_gelu_forward(float *y, const float *x, size_t n);
void swt_gelu_backward_add(float *dx, const float *dy, const float *x, size_t n);

// Element-wise optimizer updates over one parameter segment, each the same expression in the same order as the
// optimizer's Swift loop (its twin, `referenceUpdate` on the optimizer; tests compare the two bit for bit).
/// Adagrad: g' = g + wd·θ;  s += g'²;  θ += −clr·g' / (√s + ε)
void swt_adagrad_update(float *p, const float *g, float *s, size_t n, float wd, float clr, float eps);
/// RMSprop (torch semantics), with momentum buffer `b` and centred average `gbar` each optional (NULL).
void swt_rmsprop_update(float *p, const float *g, float *v, float *b, float *gbar, size_t n, float wd, float alpha,
                        float w, float eps, float mu, float lr);
/// Adadelta: v ← ρv + (1−ρ)g'²;  Δ = √(u+ε)/√(v+ε)·g';  u ← ρu + (1−ρ)Δ²;  θ += −lr·Δ
void swt_adadelta_update(float *p, const float *g, float *v, float *u, size_t n, float wd, float rho, float w,
                         float eps, float lr);
/// NAdam (torch semantics, per-step coefficients computed by the caller).
void swt_nadam_update(float *p, const float *g, float *m, float *v, size_t n, float decay, float l2, float w1,
                      float b2, float w2, float bc2, float eps, float grad_coef, float mom_coef);

/// LAMB's first pass over a segment: moments, the Adam direction r = m̂/(√v̂ + ε) + wd·θ, and Σθ², Σr² added to
/// *sum_p, *sum_r (double; 8-lane partial sums, so the sums differ from the Swift twin's sequential ones by rounding
/// only, while θ-independent outputs m, v, r are bit-identical).
void swt_lamb_direction(const float *p, const float *g, float *m, float *v, float *r, size_t n, float b1, float b2,
                        float inv_bc1, float inv_sqrt_bc2, float eps, float wd, double *sum_p, double *sum_r);

// bfloat16 (the high 16 bits of an IEEE float32) for the bf16 GEMM path; tests compare with Swift twins.
#include <stdint.h>
/// dst[i] = bf16(src[i]), round to nearest even; NaN stays NaN (quiet bit set, sign and top payload kept); ±inf and
/// overflow give ±inf; subnormals are rounded like any other value (never flushed). AVX512-BF16 when present,
/// else a portable loop (AVX-512F/AVX2/baseline clones); every path returns the same bits.
void swt_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
/// dst[i] = float(src[i]) (exact).
void swt_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

/// Fused GELU kernels with a bf16 output, bit-identical to the unfused sequence (the fp32 kernel, then
/// swt_f32_to_bf16): yh = bf16(gelu(x)) with no fp32 output; dx = 0 + dy·GELU'(x) (swt_gelu_backward_add into a
/// zeroed dx) and dxh = bf16(dx). Processed in L1-sized blocks.
void swt_gelu_forward_bf16(uint16_t *yh, const float *x, size_t n);
void swt_gelu_backward_bf16(float *dx, uint16_t *dxh, const float *dy, const float *x, size_t n);

/// CPU features from cpuid, each counted only when the OS has enabled its register state (XCR0).
#define SWT_CPU_AVX512F     1u
#define SWT_CPU_AVX512_BF16 2u
#define SWT_CPU_AMX_BF16    4u
unsigned swt_cpu_features(void);

#endif
