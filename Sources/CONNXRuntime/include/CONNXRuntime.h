// ONNX Runtime's C API, as its header declares it. The header is not committed:
// scripts/install-onnxruntime.sh takes it from Debian 13's libonnxruntime-dev
// into ../vendor/. The library is opened at run time (dlopen), never linked, so
// the server runs where it is absent and only ONNX models fail.
#ifndef BATCHSERVER_CONNXRUNTIME_H
#define BATCHSERVER_CONNXRUNTIME_H

#include "../vendor/onnxruntime_c_api.h"

/// The API table of a library whose OrtGetApiBase is `get_api_base`, or NULL
/// when that library does not serve `version`.
const OrtApi *bs_ort_api(void *get_api_base, uint32_t version);

/// The library's version string ("1.32.0").
const char *bs_ort_version(void *get_api_base);

#endif
