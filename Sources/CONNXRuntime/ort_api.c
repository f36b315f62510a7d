#include "CONNXRuntime.h"

typedef const OrtApiBase *(*bs_get_api_base_fn)(void);

const OrtApi *bs_ort_api(void *get_api_base, uint32_t version) {
    const OrtApiBase *base = ((bs_get_api_base_fn)get_api_base)();
    return base == NULL ? NULL : base->GetApi(version);
}

const char *bs_ort_version(void *get_api_base) {
    const OrtApiBase *base = ((bs_get_api_base_fn)get_api_base)();
    return base == NULL ? "" : base->GetVersionString();
}
