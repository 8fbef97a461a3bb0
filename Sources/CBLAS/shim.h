// OpenBLAS's CBLAS interface (Debian: libopenblas-dev, pkg-config `openblas`).
#ifndef SWIFT_TRAIN_CBLAS_SHIM_H
#define SWIFT_TRAIN_CBLAS_SHIM_H
#include <cblas.h>
#endif
