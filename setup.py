"""Build fastnn's one extension module, fastnn._C.

The C sources in csrc/ are found, not listed, by one rule on their paths:
- compiled ONCE for the baseline CPU: every `*_api.c` (a family's entry points:
  checks, thread splits, index math) and everything under `csrc/runtime/`
  (dispatch.c, threads.c, alloc.c); dispatch.c picks one ISA's sub-tables at import;
- compiled once PER ISA: every other `csrc/*.c` and `csrc/<family>/*.c` (a
  family's vector loops, written once against csrc/simd.h), each copy with only
  its own ISA flags and -DFNN_TARGET=<n> (so nothing outside them needs AVX).
A new family is csrc/<family>.c + csrc/<family>_api.c (or a csrc/<family>/
folder of such files); nothing here changes. Every csrc/**/*.h is a dependency.
Threads are fastnn's own pool (csrc/runtime/threads.c, POSIX threads), so
there is no OpenMP to probe. FASTNN_CYTHON_DEBUG=1 turns on Cython's bounds
and wraparound checks. Nothing is built with -march=native or -Ofast.
"""
import glob
import os
import platform
import subprocess
import sys
import sysconfig

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext



def find_sources():
    """(per-ISA kernel files, compiled-once files) of csrc/, by the rule above."""
    files = sorted(glob.glob("csrc/*.c") + glob.glob("csrc/*/*.c"))
    once = [f for f in files if f.endswith("_api.c") or f.startswith("csrc/runtime/")]
    return [f for f in files if f not in once], once


KERNEL_SOURCES, RUNTIME_SOURCES = find_sources()
HEADERS = sorted(glob.glob("csrc/*.h") + glob.glob("csrc/*/*.h"))
C_FLAGS = ["-std=c11", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden"]
# target number (simd.h), extra flags
ISAS = {
    "generic": (0, []),
    "avx2": (1, ["-mavx2", "-mfma"]),
    "avx512": (2, ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"]),
}
def is_x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


class BuildExt(build_ext):
    def build_extension(self, ext):
        cc = self.compiler
        isas = ["generic", "avx2", "avx512"] if is_x86() else ["generic"]
        objects = []
        for isa in isas:
            target, flags = ISAS[isa]
            objects += cc.compile(
                KERNEL_SOURCES, output_dir=os.path.join(self.build_temp, isa),
                macros=[("FNN_TARGET", str(target))], include_dirs=["csrc"],
                extra_postargs=C_FLAGS + flags, depends=HEADERS)
        build_macros = [(f"FNN_BUILD_{isa.upper()}", "1") for isa in isas if isa != "generic"]
        objects += cc.compile(
            RUNTIME_SOURCES, output_dir=os.path.join(self.build_temp, "runtime"),
            macros=build_macros, include_dirs=["csrc"],
            extra_postargs=C_FLAGS + ["-pthread"], depends=HEADERS)
        ext.extra_objects = objects
        # relink when a kernel object changed, not only when _C.c did
        ext.depends = list(ext.depends) + objects
        ext.extra_link_args = ["-pthread", "-lm"]
        self.write_build_config(ext, isas)
        super().build_extension(ext)

    def write_build_config(self, ext, isas):
        """Record compiler and flags beside the extension, for fastnn.show_config()."""
        compiler = " ".join(self.compiler.compiler_so[:1])
        try:
            out = subprocess.run([self.compiler.compiler_so[0], "--version"], capture_output=True,
                                 text=True, timeout=30).stdout
            compiler = out.splitlines()[0] if out else compiler
        except (OSError, subprocess.SubprocessError):
            pass
        config = {
            "compiler": compiler,
            "c_flags": " ".join(C_FLAGS + ["-pthread"]),
            "isa_flags": {isa: " ".join(ISAS[isa][1]) for isa in isas},
            "platform": sysconfig.get_platform(),
        }
        text = ('"""Written by setup.py at build time: how this copy of fastnn was compiled."""\n'
                f"BUILD_CONFIG = {config!r}\n")
        # the source package serves editable installs, build_lib the wheel
        for folder in ("src/fastnn", os.path.join(self.build_lib, "fastnn")):
            if os.path.isdir(folder):
                with open(os.path.join(folder, "_build_config.py"), "w") as f:
                    f.write(text)


debug = os.environ.get("FASTNN_CYTHON_DEBUG", "0") == "1"
extensions = cythonize(
    [Extension("fastnn._C", sources=["src/fastnn/_C.pyx"], include_dirs=["csrc", numpy.get_include()],
               # NumPy >= 1.23 at run time (pyproject.toml); the memory-handler API needs 1.22
               define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                              ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")])],
    compiler_directives={
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": True,
        "initializedcheck": debug,
    },
)

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
