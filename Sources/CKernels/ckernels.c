#include "ckernels.h"
#include <stdint.h>
#include <math.h>

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef float v8fa __attribute__((vector_size(32), aligned(32)));

// Scalar element: the exact same expression order as the vector body and the Swift twin.
static inline void adam_one(float *p, const float *g, float *m, float *v, size_t i, float decay, float l2, float w1,
                            float beta2, float w2, float step, float inv_bc2_sqrt, float eps) {
    float pi = p[i], m0 = m[i], v0 = v[i];
    float gi = g[i] + l2 * pi;
    float mi = m0 + w1 * (gi - m0);
    float vi = v0 * beta2 + w2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi * decay - step * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
}

// Compiled for AVX2 and for the baseline; the loader picks the best the CPU supports (GCC/Clang function
// multiversioning), so the binary stays portable.
#if defined(__x86_64__)
__attribute__((target_clones("avx2", "default")))
#endif
void swt_adam_update(float *p, const float *g, float *m, float *v, size_t n,
                     float decay, float l2, float w1, float beta2, float w2,
                     float step, float inv_bc2_sqrt, float eps, int streaming) {
    size_t i = 0;
    // Scalar head until θ is 32-byte aligned; the vector body needs θ, m, v equally aligned for streaming stores.
    while (i < n && ((uintptr_t)(p + i) & 31) != 0) {
        adam_one(p, g, m, v, i, decay, l2, w1, beta2, w2, step, inv_bc2_sqrt, eps);
        i++;
    }
    const int aligned = (((uintptr_t)(m + i) | (uintptr_t)(v + i)) & 31) == 0;
    const v8f vdecay = {decay, decay, decay, decay, decay, decay, decay, decay};
    if (streaming && aligned) {
        for (; i + 8 <= n; i += 8) {
            v8f pi = *(const v8fa *)(p + i), m0 = *(const v8fa *)(m + i), v0 = *(const v8fa *)(v + i);
            v8f gi = *(const v8f *)(g + i) + l2 * pi;
            v8f mi = m0 + w1 * (gi - m0);
            v8f vi = v0 * beta2 + w2 * gi * gi;
            v8f root;
            for (int k = 0; k < 8; k++) root[k] = sqrtf(vi[k]);
            v8f pn = pi * vdecay - step * mi / (root * inv_bc2_sqrt + eps);
            __builtin_nontemporal_store((v8fa)mi, (v8fa *)(m + i));
            __builtin_nontemporal_store((v8fa)vi, (v8fa *)(v + i));
            __builtin_nontemporal_store((v8fa)pn, (v8fa *)(p + i));
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            v8f pi = *(const v8f *)(p + i), m0 = *(const v8f *)(m + i), v0 = *(const v8f *)(v + i);
            v8f gi = *(const v8f *)(g + i) + l2 * pi;
            v8f mi = m0 + w1 * (gi - m0);
            v8f vi = v0 * beta2 + w2 * gi * gi;
            v8f root;
            for (int k = 0; k < 8; k++) root[k] = sqrtf(vi[k]);
            *(v8f *)(m + i) = mi;
            *(v8f *)(v + i) = vi;
            *(v8f *)(p + i) = pi * vdecay - step * mi / (root * inv_bc2_sqrt + eps);
        }
    }
    for (; i < n; i++) adam_one(p, g, m, v, i, decay, l2, w1, beta2, w2, step, inv_bc2_sqrt, eps);
    // Streaming stores are weakly ordered: fence before anyone else reads the buffers.
#if defined(__x86_64__)
    if (streaming) __builtin_ia32_sfence();
#else
    if (streaming) __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

typedef double v8d __attribute__((vector_size(64), aligned(4)));

// The kernels below are compiled for AVX-512, AVX2 and the baseline; the loader picks the best the CPU supports.
#if defined(__x86_64__)
#define SWT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SWT_CLONES
#endif

SWT_CLONES
double swt_sum_squares(const float *x, size_t n) {
    // Two independent 8-wide double accumulators hide the add latency; the widening keeps the sum exact enough
    // for a 7.5 M-element gradient (float accumulation would lose ~3 digits).
    v8d s0 = {0}, s1 = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v8d a, b;
        for (int k = 0; k < 8; k++) { a[k] = (double)x[i + k]; b[k] = (double)x[i + 8 + k]; }
        s0 += a * a;
        s1 += b * b;
    }
    double s = 0;
    for (int k = 0; k < 8; k++) s += s0[k] + s1[k];
    for (; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

SWT_CLONES
void swt_relu_backward_add(float *restrict dx, const float *restrict dy, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : 0.0f;
}

SWT_CLONES
void swt_column_sums_add(float *restrict dst, const float *restrict src, size_t rows, size_t cols, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = src + r * ld;
        for (size_t j = 0; j < cols; j++) dst[j] += row[j];
    }
}

SWT_CLONES
void swt_row_sums_add(float *restrict dst, const float *restrict src, size_t rows, size_t cols, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = src + r * ld;
        v8f acc = {0};
        size_t j = 0;
        for (; j + 8 <= cols; j += 8) acc += *(const v8f *)(row + j);
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; j < cols; j++) s += row[j];
        dst[r] += s;
    }
}

// Cephes expf, exactly as `expCephes` in FastGELU.swift (clamp written as Swift's max/min so NaN behaves the same).
static inline float exp_cephes(float value) {
    float lo = -87.3f >= value ? -87.3f : value;        // Swift.max(value, -87.3)
    float x = 88.3f < lo ? 88.3f : lo;                  // Swift.min(lo, 88.3)
    const float shifter = 12582912.0f;
    float n = (x * 1.44269504f + shifter) - shifter;
    float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { uint32_t u; float f; } scale = { .u = (uint32_t)((int32_t)n + 127) << 23 };
    return p * scale.f;
}

static const float gelu_scale = 0.7978845608028654f, gelu_cubic = 0.044715f;

SWT_CLONES
void swt_gelu_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = gelu_scale * (v + gelu_cubic * v * v * v);
        float r = 1.0f / (1.0f + exp_cephes(-2.0f * u));
        y[i] = v * r;
    }
}

SWT_CLONES
void swt_gelu_backward_add(float *restrict dx, const float *restrict dy, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = gelu_scale * (v + gelu_cubic * v * v * v);
        float q = exp_cephes(-2.0f * u);
        float r = 1.0f / (1.0f + q);
        float du = gelu_scale * (1.0f + 3.0f * gelu_cubic * v * v);
        dx[i] += dy[i] * (r + 2.0f * v * du * (q * r) * r);
    }
}

SWT_CLONES
void swt_adagrad_update(float *restrict p, const float *restrict g, float *restrict s, size_t n, float wd, float clr,
                        float eps) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float si = s[i] + gi * gi;
        s[i] = si;
        p[i] = p[i] + -clr * gi / (sqrtf(si) + eps);
    }
}

// Swift's max(x, 0) for the centred variance, NaN included: 0 >= x ? 0 : x.
static inline float swift_max0(float x) { return 0.0f >= x ? 0.0f : x; }

SWT_CLONES
void swt_rmsprop_update(float *restrict p, const float *restrict g, float *restrict v, float *restrict b,
                        float *restrict gbar, size_t n, float wd, float alpha, float w, float eps, float mu, float lr) {
    if (!b && !gbar) {
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            float vi = v[i] * alpha + w * gi * gi;
            v[i] = vi;
            p[i] = p[i] + -lr * gi / (sqrtf(vi) + eps);
        }
    } else if (b && !gbar) {
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            float vi = v[i] * alpha + w * gi * gi;
            v[i] = vi;
            float bi = b[i] * mu + gi / (sqrtf(vi) + eps);
            b[i] = bi;
            p[i] = p[i] + -lr * bi;
        }
    } else if (!b) {
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            float vi = v[i] * alpha + w * gi * gi;
            float ai = gbar[i] + w * (gi - gbar[i]);
            v[i] = vi;
            gbar[i] = ai;
            p[i] = p[i] + -lr * gi / (sqrtf(swift_max0(vi - ai * ai)) + eps);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            float vi = v[i] * alpha + w * gi * gi;
            float ai = gbar[i] + w * (gi - gbar[i]);
            v[i] = vi;
            gbar[i] = ai;
            float bi = b[i] * mu + gi / (sqrtf(swift_max0(vi - ai * ai)) + eps);
            b[i] = bi;
            p[i] = p[i] + -lr * bi;
        }
    }
}

SWT_CLONES
void swt_adadelta_update(float *restrict p, const float *restrict g, float *restrict v, float *restrict u, size_t n,
                         float wd, float rho, float w, float eps, float lr) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float vi = v[i] * rho + w * gi * gi;
        v[i] = vi;
        float delta = sqrtf(u[i] + eps) / sqrtf(vi + eps) * gi;
        u[i] = u[i] * rho + w * delta * delta;
        p[i] = p[i] + -lr * delta;
    }
}

SWT_CLONES
void swt_nadam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                      float decay, float l2, float w1, float b2, float w2, float bc2, float eps, float grad_coef,
                      float mom_coef) {
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float gi = g[i] + l2 * pi;
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float d = sqrtf(vi / bc2) + eps;
        float pg = pi + grad_coef * gi / d;
        p[i] = pg + mom_coef * mi / d;
    }
}

SWT_CLONES
void swt_lamb_direction(const float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                        float *restrict r, size_t n, float b1, float b2, float inv_bc1, float inv_sqrt_bc2, float eps,
                        float wd, double *sum_p, double *sum_r) {
    double sp[8] = {0}, sr[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; k++) {
            float gi = g[i + k], pi = p[i + k];
            float mi = b1 * m[i + k] + (1.0f - b1) * gi;
            float vi = b2 * v[i + k] + (1.0f - b2) * gi * gi;
            m[i + k] = mi;
            v[i + k] = vi;
            float ri = (mi * inv_bc1) / (sqrtf(vi) * inv_sqrt_bc2 + eps) + wd * pi;
            r[i + k] = ri;
            sp[k] += (double)pi * (double)pi;
            sr[k] += (double)ri * (double)ri;
        }
    }
    double tp = 0, tr = 0;
    for (int k = 0; k < 8; k++) { tp += sp[k]; tr += sr[k]; }
    for (; i < n; i++) {
        float gi = g[i], pi = p[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float ri = (mi * inv_bc1) / (sqrtf(vi) * inv_sqrt_bc2 + eps) + wd * pi;
        r[i] = ri;
        tp += (double)pi * (double)pi;
        tr += (double)ri * (double)ri;
    }
    *sum_p += tp;
    *sum_r += tr;
}

// ---- bfloat16 conversion and CPU features (the bf16 GEMM path in Sources/Tensors/GEMM.swift) ----

#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

// fp32 → bf16, round to nearest even on the 16 dropped bits: adding 0x7FFF plus the lowest kept bit carries into the
// kept half exactly when the dropped half is above one half, or exactly one half with an odd kept half. Overflow
// rounds to ±inf the same way (0x7F7FFFFF → 0x7F80). NaN would carry into the exponent, so it is handled apart:
// keep sign and top payload bits and set the quiet bit (what VCVTNEPS2BF16 does), so a NaN never becomes ±inf.
static inline uint16_t bf16_round_one(uint32_t u) {
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    uint32_t quiet = (u >> 16) | 0x0040u;
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
}

// Portable body: a select, no branch, so the compiler vectorises it for each clone (AVX-512F, AVX2, baseline).
SWT_CLONES
static void f32_to_bf16_portable(uint16_t *restrict dst, const float *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, src + i, 4);
        dst[i] = bf16_round_one(u);
    }
}

#if defined(__x86_64__)
// AVX512-BF16: VCVTNEPS2BF16 converts 16 floats with RNE and quiets NaNs like bf16_round_one, but treats subnormal
// inputs as zero (DAZ). Lanes holding a non-zero subnormal (|x| < 2⁻¹²⁶, rare in training data) are redone with the
// integer rounding, so every dispatch path gives the same bits.
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void f32_to_bf16_avx512bf16(uint16_t *restrict dst, const float *restrict src, size_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), min_normal = _mm512_set1_epi32(0x00800000);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
        __m512i a = _mm512_and_si512(_mm512_castps_si512(x), abs_mask);
        __mmask16 sub = _mm512_cmplt_epi32_mask(a, min_normal) & _mm512_test_epi32_mask(a, a);
        _mm256_storeu_si256((__m256i *)(dst + i), h);
        if (sub) {
            for (int k = 0; k < 16; k++) {
                if (sub & (1u << k)) {
                    uint32_t u;
                    memcpy(&u, src + i + k, 4);
                    dst[i + k] = bf16_round_one(u);
                }
            }
        }
    }
    f32_to_bf16_portable(dst + i, src + i, n - i);
}
#endif

// 1 when the CPU (and the OS, through XCR0) supports AVX512-BF16; decided once, on first use.
static int bf16_vector_path(void) {
    static int cached = -1;
    if (cached < 0) cached = (swt_cpu_features() & SWT_CPU_AVX512_BF16) != 0;
    return cached;
}

void swt_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
#if defined(__x86_64__)
    if (bf16_vector_path()) { f32_to_bf16_avx512bf16(dst, src, n); return; }
#endif
    f32_to_bf16_portable(dst, src, n);
}

// bf16 → fp32 is exact: the bf16 bits are the high half of the float. Vectorised by the clones (a widen and a shift).
SWT_CLONES
void swt_bf16_to_f32(float *restrict dst, const uint16_t *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, 4);
    }
}

// ---- Fused element-wise kernels with bf16 outputs (the GPT's bf16 workspace, Sources/Models/GPT.swift) ----
// Each runs the fp32 kernel above on a block that stays in L1 and rounds the block with swt_f32_to_bf16, so the bf16
// bits are exactly those of the unfused sequence (fp32 kernel over the whole buffer, then BF16.round): the same fp32
// values, rounded to nearest even by the same code. What goes is a pass over memory: the fp32 output is never
// written out (GELU forward) or is written once while hot (GELU backward), and no separate zeroing or rounding pass
// reads it back.
#define SWT_FUSED_BLOCK 1024

void swt_gelu_forward_bf16(uint16_t *yh, const float *x, size_t n) {
    float block[SWT_FUSED_BLOCK];
    for (size_t i = 0; i < n; i += SWT_FUSED_BLOCK) {
        size_t m = n - i < SWT_FUSED_BLOCK ? n - i : SWT_FUSED_BLOCK;
        swt_gelu_forward(block, x + i, m);
        swt_f32_to_bf16(yh + i, block, m);
    }
}

void swt_gelu_backward_bf16(float *dx, uint16_t *dxh, const float *dy, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += SWT_FUSED_BLOCK) {
        size_t m = n - i < SWT_FUSED_BLOCK ? n - i : SWT_FUSED_BLOCK;
        memset(dx + i, 0, m * sizeof(float));  // +0, then +=: the same bits as the zeroed buffer (−0 becomes +0)
        swt_gelu_backward_add(dx + i, dy + i, x + i, m);
        swt_f32_to_bf16(dxh + i, dx + i, m);
    }
}

unsigned swt_cpu_features(void) {
    unsigned features = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid(1, a, b, c, d);
    if (!(c & (1u << 27))) return 0;  // OSXSAVE: without it xgetbv faults and no extended state is enabled
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    // XCR0: SSE, AVX and the three AVX-512 state components (opmask, ZMM0–15 upper halves, ZMM16–31) enabled.
    int os_avx512 = (lo & 0xE6u) == 0xE6u;
    // XCR0 bits 17, 18: AMX tile configuration and tile data (Linux also wants a per-process permission request,
    // arch_prctl(ARCH_REQ_XCOMP_PERM), which oneDNN makes itself before using AMX).
    int os_amx = (lo & 0x60000u) == 0x60000u;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_subleaf = a;
    if (os_avx512 && (b & (1u << 16))) features |= SWT_CPU_AVX512F;
    if (os_amx && (d & (1u << 22))) features |= SWT_CPU_AMX_BF16;
    if (max_subleaf >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if ((features & SWT_CPU_AVX512F) && (a & (1u << 5))) features |= SWT_CPU_AVX512_BF16;
    }
#endif
    return features;
}
