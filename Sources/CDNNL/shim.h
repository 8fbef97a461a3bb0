// oneDNN's C API, 2.x (Debian: libdnnl-dev 2.6.3, which ships no pkg-config file, hence `link "dnnl"` in the module
// map and no pkgConfig in Package.swift), plus a few helpers for Sources/Tensors/GEMM.swift.
#ifndef SWIFT_TRAIN_CDNNL_SHIM_H
#define SWIFT_TRAIN_CDNNL_SHIM_H
#include <dlfcn.h>
#include <stdint.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

/// A 2-D memory descriptor rows×cols with element (r, c) at r·row_stride + c·col_stride elements (dnnl_dims_t is
/// a C array, which Swift sees as a 12-tuple; building it here keeps GEMM.swift readable).
static inline dnnl_status_t swt_dnnl_md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t row_stride,
                                           int64_t col_stride, dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

// Debian's libdnnl is built with DNNL_CPU_RUNTIME=OMP (it links libgomp.so.1). OpenMP's thread count is a per-thread
// setting (the nthreads-var ICV of the calling thread) read at each parallel region, so it is set on the thread that
// calls the GEMM. The symbols are looked up at run time (RTLD_DEFAULT = NULL in glibc) because Debian ships only
// libgomp.so.1, not the unversioned library a link line needs; libdnnl has already loaded it.
/// omp_set_num_threads(n); returns 0 when no OpenMP runtime is loaded (a oneDNN built for TBB or sequential).
static inline int swt_openmp_set_num_threads(int n) {
    static void (*set)(int) = 0;
    if (!set) set = (void (*)(int))dlsym((void *)0, "omp_set_num_threads");
    if (!set) return 0;
    set(n);
    return 1;
}
/// omp_get_max_threads() of the calling thread, or -1 without an OpenMP runtime.
static inline int swt_openmp_max_threads(void) {
    static int (*get)(void) = 0;
    if (!get) get = (int (*)(void))dlsym((void *)0, "omp_get_max_threads");
    return get ? get() : -1;
}
#endif
