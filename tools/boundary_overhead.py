"""Per-call cost of the Cython boundary: raw-pointer vs typed-memoryview arguments.

Builds a throwaway extension (in a temp dir) whose functions do the same
validation-free work on float32 C-contiguous ndarrays, once taking the data
pointer with PyArray_DATA and once through typed memoryviews
(`const float[::1]` / `float[::1]`), with 1 to 4 array arguments (relu has 2,
adam_step 4, linear 3-4, linear_backward 4-6). The C body is empty, so the
difference is the buffer acquisition alone. Run: python tools/boundary_overhead.py
Results of a run are quoted in src/fastnn/_C.pyx.
"""
import os
import subprocess
import sys
import tempfile
import timeit

SOURCE = r'''
# cython: language_level=3, boundscheck=False, wraparound=False
cimport numpy as cnp
cnp.import_array()

cdef inline float *ptr(object a) noexcept:
    return <float *>cnp.PyArray_DATA(<cnp.ndarray>a)

cdef void sink(const float *a, const float *b, const float *c, float *d) noexcept nogil:
    pass

def p1(a):
    cdef const float *x = ptr(a)
    with nogil:
        sink(x, NULL, NULL, NULL)

def p2(a, b):
    cdef const float *x = ptr(a)
    cdef float *y = ptr(b)
    with nogil:
        sink(x, NULL, NULL, y)

def p4(a, b, c, d):
    cdef const float *x = ptr(a)
    cdef const float *y = ptr(b)
    cdef const float *z = ptr(c)
    cdef float *w = ptr(d)
    with nogil:
        sink(x, y, z, w)

def m1(const float[::1] a):
    with nogil:
        sink(&a[0], NULL, NULL, NULL)

def m2(const float[::1] a, float[::1] b):
    with nogil:
        sink(&a[0], NULL, NULL, &b[0])

def m4(const float[::1] a, const float[::1] b, const float[::1] c, float[::1] d):
    with nogil:
        sink(&a[0], &b[0], &c[0], &d[0])

def m2d(const float[:, ::1] a, float[:, ::1] b):
    with nogil:
        sink(&a[0, 0], NULL, NULL, &b[0, 0])

def p2d(a, b):
    cdef const float *x = ptr(a)
    cdef float *y = ptr(b)
    with nogil:
        sink(x, NULL, NULL, y)
'''

SETUP = r'''
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(ext_modules=cythonize([Extension("bnd", ["bnd.pyx"], include_dirs=[numpy.get_include()])]),
      script_args=["build_ext", "--inplace", "-q"])
'''


def best_us(stmt, env, number=200_000, repeat=7):
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e6


def main():
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "bnd.pyx"), "w") as f:
            f.write(SOURCE)
        with open(os.path.join(tmp, "setup.py"), "w") as f:
            f.write(SETUP)
        r = subprocess.run([sys.executable, "setup.py"], cwd=tmp, capture_output=True, text=True)
        if r.returncode:
            sys.exit(r.stdout + r.stderr)
        sys.path.insert(0, tmp)
        import numpy as np
        import bnd
        v = np.ones(64, np.float32)
        m = np.ones((16, 16), np.float32)
        env = {"bnd": bnd, "v": v, "m": m}
        rows = [("1 array (64,)", "bnd.p1(v)", "bnd.m1(v)"),
                ("2 arrays (64,)", "bnd.p2(v, v)", "bnd.m2(v, v)"),
                ("4 arrays (64,)", "bnd.p4(v, v, v, v)", "bnd.m4(v, v, v, v)"),
                ("2 arrays (16, 16)", "bnd.p2d(m, m)", "bnd.m2d(m, m)")]
        print(f"{'arguments':20s} {'pointer us':>11s} {'memoryview us':>14s} {'extra us':>9s}")
        for label, p, mv in rows:
            tp, tm = best_us(p, env), best_us(mv, env)
            print(f"{label:20s} {tp:11.3f} {tm:14.3f} {tm - tp:9.3f}")


if __name__ == "__main__":
    main()
