// Open MPI defines its predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) as macros that
// cast the address of a global struct; Swift's importer cannot see such macros, so each is re-exported here as a
// static inline function. Nothing else belongs in this file.
#ifndef SWIFT_TRAIN_CMPI_SHIM_H
#define SWIFT_TRAIN_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm swt_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm swt_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype swt_type_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype swt_type_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype swt_type_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype swt_type_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype swt_type_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype swt_type_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op swt_op_sum(void) { return MPI_SUM; }
static inline MPI_Op swt_op_max(void) { return MPI_MAX; }
static inline MPI_Op swt_op_min(void) { return MPI_MIN; }
static inline void *swt_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request swt_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *swt_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *swt_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Errhandler swt_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int swt_success(void) { return MPI_SUCCESS; }
static inline int swt_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int swt_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int swt_thread_funneled(void) { return MPI_THREAD_FUNNELED; }

#endif
