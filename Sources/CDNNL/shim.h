// oneDNN's C API (Debian's libdnnl-dev): BatchServer uses its BLAS-like
// dnnl_sgemm for the encoder's matrix products on the CPU.
#include <oneapi/dnnl/dnnl.h>

// Debian's oneDNN runs on OpenMP (libgomp). Declared here rather than through
// omp.h, which Swift's clang does not ship; used to give each model instance
// its own thread count.
extern void omp_set_num_threads(int count);
