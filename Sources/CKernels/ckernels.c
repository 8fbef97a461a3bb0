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
