// CNNMPI: the few MPI calls swift-cnn's MPICommunicator uses, as static inline C functions.
//
// Swift cannot import Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are macros over the
// addresses of library globals), so these wrappers name them in C. `mpi.h` and `-lmpi` are found
// through pkg-config (`ompi-c`, see Package.swift): no MPI version or path is written here.
// This module has no stable API of its own.
#ifndef CNN_MPI_SHIM_H
#define CNN_MPI_SHIM_H

#include <mpi.h>
#include <stddef.h>

/// A pending non-blocking collective.
typedef struct { MPI_Request request; } cnn_mpi_request;

/// Initialises MPI (funneled threading: only the thread that initialised calls MPI) unless it
/// already is, and makes errors on MPI_COMM_WORLD return codes instead of aborting.
static inline int cnn_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

static inline int cnn_mpi_finalize(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized ? MPI_SUCCESS : MPI_Finalize();
}

static inline void cnn_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static inline int cnn_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int cnn_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

/// The number of ranks on this rank's host (sharing its memory).
static inline int cnn_mpi_local_size(void) {
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) != MPI_SUCCESS) return 1;
    int s = 1;
    MPI_Comm_size(local, &s);
    MPI_Comm_free(&local);
    return s;
}

// buffer is `count` floats (doubles), reduced in place.
static inline int cnn_mpi_iallreduce_sum_f32(float *buffer, int count, cnn_mpi_request *r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r->request);
}
static inline int cnn_mpi_iallreduce_sum_f64(double *buffer, int count, cnn_mpi_request *r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r->request);
}
static inline int cnn_mpi_ibcast(void *buffer, int bytes, int root, cnn_mpi_request *r) {
    return MPI_Ibcast(buffer, bytes, MPI_BYTE, root, MPI_COMM_WORLD, &r->request);
}
static inline int cnn_mpi_ibarrier(cnn_mpi_request *r) { return MPI_Ibarrier(MPI_COMM_WORLD, &r->request); }

/// Sets *done to 1 once the request has completed.
static inline int cnn_mpi_test(cnn_mpi_request *r, int *done) { return MPI_Test(&r->request, done, MPI_STATUS_IGNORE); }

/// The text of an MPI error code into buffer (at least MPI_MAX_ERROR_STRING + 1 bytes).
static inline void cnn_mpi_error_string(int code, char *buffer) {
    int length = 0;
    buffer[0] = 0;
    if (MPI_Error_string(code, buffer, &length) == MPI_SUCCESS) buffer[length] = 0;
}
static inline int cnn_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }

/// This host's name into buffer (at least MPI_MAX_PROCESSOR_NAME + 1 bytes).
static inline void cnn_mpi_processor_name(char *buffer) {
    int length = 0;
    buffer[0] = 0;
    if (MPI_Get_processor_name(buffer, &length) == MPI_SUCCESS) buffer[length] = 0;
}
static inline int cnn_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }

static inline int cnn_mpi_success(void) { return MPI_SUCCESS; }

#endif
