"""The CUDA kernels in Sources/GPUKernels/cuda compile and assemble cleanly.

No GPU is needed: every .cu file is compiled by NVRTC (PyPI wheel
nvidia-cuda-nvrtc-cu12, loaded with ctypes) to PTX for compute_70, compute_80
and compute_90, and the PTX is assembled by ptxas (PyPI wheel
nvidia-cuda-nvcc-cu12) for sm_70, sm_80 and sm_90, which must report no
errors and no register spills. The kernel manifest (kernels.txt) must match
the sources and the PTX entries. Numerical checks of the kernels' math live
with their CPU twins in Swift; nothing here runs a kernel.

Run `python Tests/e2e/test_cuda_kernels.py` for a table of ptxas register
counts per kernel and architecture.
"""

import ctypes
import importlib.metadata
import pathlib
import re
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
KERNEL_DIR = ROOT / "Sources" / "GPUKernels" / "cuda"
MANIFEST = KERNEL_DIR / "kernels.txt"
ARCHITECTURES = (70, 80, 90)

KERNEL_DECLARATION = re.compile(
    r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(')
PTX_ENTRY = re.compile(r"^\.(?:visible\s+)?\.entry\s+(\w+)\s*\(", re.MULTILINE)


def _wheel_file(distribution: str, name: str) -> pathlib.Path | None:
    """The installed file `name` of a wheel, or None when the wheel is missing."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == name:
            path = pathlib.Path(dist.locate_file(entry))
            if path.exists():
                return path
    return None


NVRTC_LIBRARY = _wheel_file("nvidia-cuda-nvrtc-cu12", "libnvrtc.so.12")
PTXAS = _wheel_file("nvidia-cuda-nvcc-cu12", "ptxas")

needs_wheels = pytest.mark.skipif(
    NVRTC_LIBRARY is None or PTXAS is None,
    reason="needs the PyPI wheels nvidia-cuda-nvrtc-cu12 (libnvrtc.so.12) and "
           "nvidia-cuda-nvcc-cu12 (ptxas): pip install -r requirements-test.txt")


class CompileError(Exception):
    """NVRTC or ptxas rejected a source; `log` is the compiler's own output."""

    def __init__(self, message: str, log: str):
        super().__init__(f"{message}\n{log}")
        self.log = log


class NVRTC:
    """The few NVRTC entry points the test needs, through ctypes."""

    def __init__(self, path: pathlib.Path):
        lib = ctypes.CDLL(str(path))
        program = ctypes.c_void_p
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
        lib.nvrtcVersion.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(program), ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.nvrtcCompileProgram.argtypes = [program, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        lib.nvrtcGetProgramLogSize.argtypes = [program, ctypes.POINTER(ctypes.c_size_t)]
        lib.nvrtcGetProgramLog.argtypes = [program, ctypes.c_char_p]
        lib.nvrtcGetPTXSize.argtypes = [program, ctypes.POINTER(ctypes.c_size_t)]
        lib.nvrtcGetPTX.argtypes = [program, ctypes.c_char_p]
        lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(program)]
        self.lib = lib

    def _check(self, status: int, what: str):
        if status != 0:
            raise CompileError(f"{what}: {self.lib.nvrtcGetErrorString(status).decode()}", "")

    def version(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def compile_to_ptx(self, source: str, name: str, arch: int) -> str:
        """PTX for compute_`arch`, or CompileError carrying NVRTC's log."""
        program = ctypes.c_void_p()
        self._check(self.lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(),
                                                0, None, None), "nvrtcCreateProgram")
        try:
            options = [f"--gpu-architecture=compute_{arch}".encode()]
            status = self.lib.nvrtcCompileProgram(program, len(options),
                                                  (ctypes.c_char_p * len(options))(*options))
            size = ctypes.c_size_t()
            self._check(self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            log = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
            log_text = log.value.decode(errors="replace")
            if status != 0:
                message = self.lib.nvrtcGetErrorString(status).decode()
                raise CompileError(f"NVRTC failed on {name} for compute_{arch}: {message}", log_text)
            self._check(self.lib.nvrtcGetPTXSize(program, ctypes.byref(size)), "nvrtcGetPTXSize")
            ptx = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetPTX(program, ptx), "nvrtcGetPTX")
            return ptx.value.decode()
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))


def assemble(ptx: str, arch: int, extra=()) -> dict[str, dict[str, int]]:
    """Runs `ptxas -arch=sm_<arch> -v` on the PTX; per entry: registers,
    stack, spill stores and spill loads. CompileError on any error."""
    with tempfile.TemporaryDirectory() as directory:
        source = pathlib.Path(directory) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([str(PTXAS), f"-arch=sm_{arch}", "-v", *extra, str(source),
                                 "-o", str(pathlib.Path(directory) / "kernel.cubin")],
                                capture_output=True, text=True, timeout=120)
    log = result.stdout + result.stderr
    if result.returncode != 0 or re.search(r"\berror\b", log, re.IGNORECASE):
        raise CompileError(f"ptxas failed for sm_{arch} (exit {result.returncode})", log)
    return parse_ptxas_log(log)


def parse_ptxas_log(log: str) -> dict[str, dict[str, int]]:
    report: dict[str, dict[str, int]] = {}
    current = None
    for line in log.splitlines():
        if match := re.search(r"Function properties for (\w+)", line):
            current = report.setdefault(match.group(1), {})
        elif match := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line):
            current.update(stack=int(match.group(1)), spill_stores=int(match.group(2)),
                           spill_loads=int(match.group(3)))
        elif match := re.search(r"Compiling entry function '(\w+)'", line):
            current = report.setdefault(match.group(1), {})
        elif (match := re.search(r"Used (\d+) registers", line)) and current is not None:
            current["registers"] = int(match.group(1))
    return report


def read_manifest() -> dict[str, list[str]]:
    kernels: dict[str, list[str]] = {}
    for line in MANIFEST.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            file, entry = line.split()
            kernels.setdefault(file, []).append(entry)
    return kernels


SOURCES = sorted(KERNEL_DIR.glob("*.cu"))


@pytest.fixture(scope="module")
def nvrtc() -> NVRTC:
    return NVRTC(NVRTC_LIBRARY)


@needs_wheels
def test_nvrtc_is_cuda_12(nvrtc):
    major, _ = nvrtc.version()
    assert major == 12, "compute_70 (Volta) needs CUDA 12's NVRTC; CUDA 13 dropped it"


def test_manifest_matches_sources():
    manifest = read_manifest()
    declared = {path.name: KERNEL_DECLARATION.findall(path.read_text()) for path in SOURCES}
    assert SOURCES, f"no .cu files in {KERNEL_DIR}"
    assert manifest == declared


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_every_kernel_documents_its_geometry(source):
    text = source.read_text()
    assert "#include" not in text, "NVRTC builds these without headers"
    for match in KERNEL_DECLARATION.finditer(text):
        comment = text[:match.start()].rsplit("\n\n", 1)[-1]
        assert "Geometry: grid" in comment and "block (" in comment, f"{match.group(1)} has no geometry comment"
        assert re.search(r"//\s*\(", text[match.end():text.index("{", match.end())]), \
            f"{match.group(1)} has no shape comment on its buffers"


@needs_wheels
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: f"sm_{arch}")
@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_kernels_compile_and_assemble_without_spills(nvrtc, source, arch):
    ptx = nvrtc.compile_to_ptx(source.read_text(), source.name, arch)
    expected = read_manifest()[source.name]
    assert sorted(PTX_ENTRY.findall(ptx)) == sorted(expected)
    report = assemble(ptx, arch)
    assert sorted(report) == sorted(expected)
    for entry, figures in report.items():
        assert figures.get("spill_stores") == 0 and figures.get("spill_loads") == 0, f"{entry} spills: {figures}"
        assert figures.get("stack") == 0, f"{entry} uses local memory: {figures}"
        assert figures.get("registers", 0) > 0


@needs_wheels
def test_compile_failure_carries_the_nvrtc_log(nvrtc, tmp_path):
    broken = tmp_path / "broken.cu"
    broken.write_text('extern "C" __global__ void broken_f32(float* x) { x[0] = undeclared_value; }\n')
    with pytest.raises(CompileError) as failure:
        nvrtc.compile_to_ptx(broken.read_text(), broken.name, 80)
    assert "undeclared_value" in failure.value.log
    assert "broken.cu" in failure.value.log and "error" in failure.value.log


@needs_wheels
def test_include_of_a_runtime_header_fails(nvrtc):
    with pytest.raises(CompileError) as failure:
        nvrtc.compile_to_ptx('#include <cuda_runtime.h>\n', "include.cu", 80)
    assert "cuda_runtime.h" in failure.value.log


@needs_wheels
def test_ptxas_failure_and_spills_are_detected(nvrtc):
    with pytest.raises(CompileError):
        assemble(".version 8.0\n.target sm_80\nnot ptx at all\n", 80)
    # Forty values live at once under a 16-register cap must spill, which
    # shows the log parser would catch a spill in the real kernels.
    source = ('extern "C" __global__ void pressure_f32(float* x) {\n'
              '  float v[40];\n'
              '  for (int i = 0; i < 40; ++i) v[i] = x[i * blockDim.x + threadIdx.x];\n'
              '  float s = 0.0f;\n'
              '  for (int i = 0; i < 40; ++i) s = __fadd_rn(s, __fmul_rn(v[i], v[39 - i]));\n'
              '  for (int i = 0; i < 40; ++i) x[i] = __fadd_rn(v[i], s);\n'
              '}\n')
    report = assemble(nvrtc.compile_to_ptx(source, "pressure.cu", 80), 80, extra=("-maxrregcount=16",))
    assert report["pressure_f32"]["spill_stores"] > 0


if __name__ == "__main__":
    compiler = NVRTC(NVRTC_LIBRARY)
    print(f"NVRTC {'.'.join(map(str, compiler.version()))}, ptxas {PTXAS}")
    print(f"{'kernel':32} " + " ".join(f"sm_{arch:<5}" for arch in ARCHITECTURES) + "  (registers)")
    rows: dict[str, list[int]] = {}
    for path in SOURCES:
        for arch in ARCHITECTURES:
            for entry, figures in assemble(compiler.compile_to_ptx(path.read_text(), path.name, arch), arch).items():
                rows.setdefault(entry, []).append(figures["registers"])
    for entry, counts in rows.items():
        print(f"{entry:32} " + " ".join(f"{count:<8}" for count in counts))
