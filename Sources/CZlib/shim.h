// zlib's gz* file API reads gzip and plain files alike, which is what the IDX reader needs.
#ifndef SWIFT_TRAIN_CZLIB_SHIM_H
#define SWIFT_TRAIN_CZLIB_SHIM_H
#include <zlib.h>
#endif
