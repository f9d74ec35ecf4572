"""Eigenvalues of a Gram matrix by LAPACK's ``dsytrd`` + ``dsterf``, without the GIL.

``numpy.linalg.eigvalsh`` runs the same two routines (inside ``dsyevd``) but copies the
matrix into its own buffer and asks for the workspace on every call: measured on a
768 x 768 Gram matrix, 36-44 ms against 34-35 ms here, 0.15-0.5 CPU-s of a BERT-base
checkpoint's 72 matrices (BENCHMARKS.md). SciPy's ``lapack.dsytrd`` wrapper is as fast
but holds the GIL, so threads would run one at a time. Here the routines are SciPy's
own, taken from ``scipy.linalg.cython_lapack`` (the Cython LAPACK API; its
``__pyx_capi__`` capsules are how Numba calls them too) and called through ctypes, which
releases the GIL.
"""

import ctypes
import functools

import numpy as np
from scipy.linalg import cython_lapack

_INT = ctypes.POINTER(ctypes.c_int)
_PTR = ctypes.c_void_p


# the capsules' C API, as ctypes prototypes (not set on ctypes.pythonapi, which is shared)
_capsule_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(
    ("PyCapsule_GetName", ctypes.pythonapi)
)
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def _routine(name: str, *argtypes) -> ctypes._CFuncPtr:
    """A LAPACK routine of scipy.linalg.cython_lapack as a ctypes function (CFUNCTYPE:
    called without the GIL)."""
    capsule = cython_lapack.__pyx_capi__[name]
    address = _capsule_pointer(capsule, _capsule_name(capsule))
    return ctypes.CFUNCTYPE(None, *argtypes)(address)


@functools.cache
def _dsytrd() -> ctypes._CFuncPtr:
    # uplo, n, a, lda, d, e, tau, work, lwork, info
    return _routine("dsytrd", ctypes.c_char_p, _INT, _PTR, _INT, _PTR, _PTR, _PTR, _PTR, _INT, _INT)


@functools.cache
def _dsterf() -> ctypes._CFuncPtr:
    return _routine("dsterf", _INT, _PTR, _PTR, _INT)  # n, d, e, info


@functools.cache
def _workspace_size(n: int) -> int:
    """dsytrd's optimal workspace for order n (its block size times n): a query, which
    reads none of the arrays."""
    size = np.zeros(1)
    at = size.ctypes.data
    _dsytrd()(b"L", ctypes.c_int(n), at, ctypes.c_int(max(n, 1)), at, at, at, at,
              ctypes.c_int(-1), ctypes.c_int(0))  # fmt: skip
    return max(int(size[0]), 1)


def gram_eigenvalues(gram: np.ndarray) -> np.ndarray:
    """Eigenvalues, ascending, of a symmetric positive semidefinite float64 matrix.

    gram: (p, p), C- or Fortran-contiguous, both triangles filled; it is overwritten.
    The values are ``numpy.linalg.eigvalsh``'s to rounding (the same LAPACK routines). Raises
    ``np.linalg.LinAlgError`` where ``dsterf`` does not converge. Unlike ``dsyevd`` it does
    not scale the matrix first: ``dsterf`` scales its own input and the Householder
    reflections rescale theirs (tested down to 1e-300 and up to 1e300); a Gram matrix
    past that has overflowed already, and the caller's precision check refuses it.
    """
    p = gram.shape[0]
    if (
        gram.dtype != np.float64
        or gram.shape != (p, p)
        or not (gram.flags.c_contiguous or gram.flags.f_contiguous)
    ):
        raise ValueError(f"need a contiguous square float64 matrix, got {gram.dtype} {gram.shape}")
    if p == 0:
        return np.empty(0)
    d, e, tau = np.empty(p), np.empty(max(p - 1, 1)), np.empty(max(p - 1, 1))
    lwork = _workspace_size(p)
    work = np.empty(lwork)
    n, info = ctypes.c_int(p), ctypes.c_int(0)
    # symmetric: the C-ordered lower triangle is the Fortran-ordered upper one, equal values
    _dsytrd()(b"L", n, gram.ctypes.data, n, d.ctypes.data, e.ctypes.data, tau.ctypes.data,
              work.ctypes.data, ctypes.c_int(lwork), info)  # fmt: skip
    if info.value != 0:
        raise ValueError(f"dsytrd: argument {-info.value} was illegal")
    _dsterf()(n, d.ctypes.data, e.ctypes.data, info)
    if info.value != 0:
        raise np.linalg.LinAlgError(f"dsterf: {info.value} eigenvalues did not converge")
    return d
