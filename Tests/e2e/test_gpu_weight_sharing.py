"""GPU instances of one model version share one device copy of its weights:
the real server loads a KIND_GPU model with two instances against a fake
CUDA platform (driver, runtime, cuBLAS and NVRTC stand-ins built here with the
C compiler, loaded through the server's own function tables), which records
every host-to-device copy and device allocation. The weights go up once;
the second instance says `gpu.weights: shared`. Nothing computes: the fake
runs no kernel, so this checks the loading, not the math (test_gpu.py does
that where a GPU exists)."""

import ctypes.util
import os
import re
import subprocess

import pytest

from conftest import MODEL_REPOSITORY, server_environment
from test_encoder import tiny_checkpoint

pytestmark = pytest.mark.skipif(ctypes.util.find_library("cuda") is not None,
                                reason="this host has a CUDA driver; the fake one would not be the one loaded")

FAKE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void note(const char *what, size_t bytes) {
    const char *path = getenv("FAKE_CUDA_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (f) { fprintf(f, "%s %zu\n", what, bytes); fclose(f); }
}
/* driver */
int cuInit(unsigned flags) { return 0; }
int cuDeviceGetCount(int *count) { *count = 1; return 0; }
int cuDeviceGetAttribute(int *value, int attribute, int device) { *value = attribute == 75 ? 8 : 0; return 0; }
int cuGetErrorString(int error, const char **text) { *text = "fake"; return 0; }
int cuModuleLoadData(void **module, const void *image) { *module = malloc(8); return 0; }
int cuModuleGetFunction(void **function, void *module, const char *name) { *function = (void *)name; return 0; }
int cuModuleUnload(void *module) { free(module); return 0; }
int cuLaunchKernel(void *f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g, unsigned shared,
                   void *stream, void **params, void **extra) { return 0; }
/* runtime */
int cudaSetDevice(int device) { return 0; }
int cudaMalloc(void **pointer, size_t bytes) { *pointer = calloc(1, bytes); note("malloc", bytes); return *pointer ? 0 : 2; }
int cudaFree(void *pointer) { free(pointer); return 0; }
int cudaMallocHost(void **pointer, size_t bytes) { *pointer = calloc(1, bytes); return *pointer ? 0 : 2; }
int cudaFreeHost(void *pointer) { free(pointer); return 0; }
int cudaMemcpyAsync(void *to, const void *from, size_t bytes, int kind, void *stream) {
    if (to && from) memcpy(to, from, bytes);
    if (kind == 1) note("h2d", bytes);
    return 0;
}
int cudaMemsetAsync(void *to, int value, size_t bytes, void *stream) { if (to) memset(to, value, bytes); return 0; }
int cudaStreamCreateWithFlags(void **stream, unsigned flags) { *stream = malloc(8); return 0; }
int cudaStreamSynchronize(void *stream) { return 0; }
int cudaStreamDestroy(void *stream) { free(stream); return 0; }
const char *cudaGetErrorString(int code) { return "fake"; }
int cudaRuntimeGetVersion(int *version) { *version = 12000; return 0; }
/* cuBLAS */
int cublasCreate_v2(void **handle) { *handle = malloc(8); return 0; }
int cublasDestroy_v2(void *handle) { free(handle); return 0; }
int cublasSetStream_v2(void *handle, void *stream) { return 0; }
int cublasSetWorkspace_v2(void *handle, void *workspace, size_t bytes) { return 0; }
int cublasGemmEx(void) { return 0; }
int cublasGemmStridedBatchedEx(void) { return 0; }
/* NVRTC */
int nvrtcCreateProgram(void **program, const char *source, const char *name, int headers, const char **h, const char **n) {
    *program = malloc(8); return 0;
}
int nvrtcCompileProgram(void *program, int count, const char **options) { return 0; }
int nvrtcGetProgramLogSize(void *program, size_t *size) { *size = 1; return 0; }
int nvrtcGetProgramLog(void *program, char *log) { log[0] = 0; return 0; }
int nvrtcGetCUBINSize(void *program, size_t *size) { *size = 16; return 0; }
int nvrtcGetCUBIN(void *program, char *cubin) { memset(cubin, 7, 16); return 0; }
int nvrtcDestroyProgram(void **program) { free(*program); *program = 0; return 0; }
const char *nvrtcGetErrorString(int result) { return "fake"; }
int nvrtcVersion(int *major, int *minor) { *major = 99; *minor = 1; return 0; }
"""


@pytest.fixture
def fake_cuda(tmp_path):
    directory = tmp_path / "fake-cuda"
    directory.mkdir()
    (directory / "fake.c").write_text(FAKE)
    library = directory / "libfake.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(directory / "fake.c")], check=True)
    for name in ("libcuda.so.1", "libcudart.so.12", "libcublas.so.12", "libnvrtc.so.12"):
        (directory / name).symlink_to(library)
    return directory


def test_instances_on_one_gpu_share_one_copy_of_the_weights(start_server, tmp_path, fake_cuda):
    repo = tmp_path / "repo"
    tiny_checkpoint(repo / "on_gpu" / "1")
    config = (MODEL_REPOSITORY / "distilbert_sst2" / "config.pbtxt").read_text().replace('label_filename: "labels.txt"', "")
    (repo / "on_gpu" / "config.pbtxt").write_text(
        config.replace('name: "distilbert_sst2"', 'name: "on_gpu"') + "\ninstance_group [ { kind: KIND_GPU count: 2 } ]\n")
    log = tmp_path / "fake-cuda.log"
    env = server_environment()
    env.update(LD_LIBRARY_PATH=f"{fake_cuda}:{env.get('LD_LIBRARY_PATH', '')}", FAKE_CUDA_LOG=str(log),
               BATCHSERVER_KERNEL_CACHE=str(tmp_path / "kernels"))
    server = start_server(repo, ["--require-gpu", "true"], env=env)
    lines = [line for line in server.read_log().splitlines() if "model instance on GPU" in line]
    assert len(lines) == 2, server.read_log()[-3000:]
    kinds = [re.search(r"gpu\.weights[\"=: ]+\"?(\w+)", line).group(1) for line in lines]
    assert sorted(kinds) == ["shared", "uploaded"], lines
    weight_bytes = int(re.search(r"gpu\.weight_bytes[\"=: ]+\"?(\d+)", lines[0]).group(1))
    copied = sum(int(n) for what, n in (row.split() for row in log.read_text().splitlines()) if what == "h2d")
    # One copy of the weights (the embeddings dominate) went up, not two.
    assert weight_bytes > 0 and weight_bytes <= copied < 1.5 * weight_bytes, (copied, weight_bytes)
