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

#endif
