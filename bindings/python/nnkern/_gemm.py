"""``sgemm`` / ``dgemm`` over numpy arrays, without copies where possible."""

from __future__ import annotations

from ctypes import c_double, c_float

import numpy as np

from ._lib import NNK_NO_TRANS, NNK_ROW_MAJOR, NNK_TRANS, check, lib, ptr

__all__ = ["sgemm", "dgemm"]


def _row_view(x, dtype):
    """(row-major array, leading dimension) for a 2-D array of `dtype` with unit
    column stride, or None when its memory cannot be described that way."""
    item = np.dtype(dtype).itemsize
    if x.dtype != dtype or x.ndim != 2:
        return None
    rows, cols = x.shape
    if x.size == 0:
        return x, max(1, cols)
    if cols > 1 and x.strides[1] != item:
        return None
    if rows <= 1:
        return x, max(1, cols)
    s0 = x.strides[0]
    if s0 <= 0 or s0 % item or s0 // item < cols:
        return None
    return x, s0 // item


def _operand(x, dtype, name):
    """(array, leading dimension, transposed?) for an input operand: used in place
    when it is row-major with unit column stride, or column-major (passed as the
    transpose of a row-major matrix), else copied once to C order."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    if x.dtype == dtype:
        v = _row_view(x, dtype)
        if v is not None:
            return v[0], v[1], False
        v = _row_view(x.T, dtype)
        if v is not None:
            return v[0], v[1], True
    c = np.ascontiguousarray(x, dtype=dtype)
    return c, max(1, c.shape[1]), False


def _gemm(fn, ctype, dtype, a, b, alpha, beta, c, trans_a, trans_b):
    a0 = np.asarray(a)
    b0 = np.asarray(b)
    if a0.ndim != 2 or b0.ndim != 2:
        raise ValueError(f"a and b must be 2-D, got shapes {a0.shape} and {b0.shape}")
    m, k = (a0.shape[1], a0.shape[0]) if trans_a else a0.shape
    kb, n = (b0.shape[1], b0.shape[0]) if trans_b else b0.shape
    if k != kb:
        raise ValueError(f"op(a) is {m}x{k} but op(b) is {kb}x{n}")
    if c is None:
        if beta != 0:
            raise ValueError("beta != 0 needs an output array c")
        c = np.empty((m, n), dtype=dtype)
    else:
        if not isinstance(c, np.ndarray) or c.dtype != dtype:
            raise ValueError(f"c must be a numpy array of {np.dtype(dtype).name} (it is written in place)")
        if c.shape != (m, n):
            raise ValueError(f"c has shape {c.shape}, expected {(m, n)}")
        if not c.flags.writeable:
            raise ValueError("c is read-only")
    A, lda, ta = _operand(a0, dtype, "a")
    B, ldb, tb = _operand(b0, dtype, "b")
    ta ^= bool(trans_a)
    tb ^= bool(trans_b)
    cv = _row_view(c, dtype)
    if cv is not None:
        C, ldc = cv
        args = (ta, tb, m, n, k, A, lda, B, ldb, C, ldc)
    else:
        ct = _row_view(c.T, dtype)
        if ct is None:
            raise ValueError("c must have a unit stride along one axis (C or Fortran order, or a slice of one)")
        # Cᵀ = op(B)ᵀ·op(A)ᵀ into the row-major view of cᵀ.
        C, ldc = ct
        args = (not tb, not ta, n, m, k, B, ldb, A, lda, C, ldc)
    ta, tb, mm, nn, kk, X, ldx, Y, ldy, Z, ldz = args
    check(fn(NNK_ROW_MAJOR, NNK_TRANS if ta else NNK_NO_TRANS, NNK_TRANS if tb else NNK_NO_TRANS,
             mm, nn, kk, alpha, ptr(X, ctype), ldx, ptr(Y, ctype), ldy, beta, ptr(Z, ctype), ldz))
    return c


def sgemm(a, b, alpha=1.0, beta=0.0, c=None, trans_a=False, trans_b=False):
    """``alpha·op(a)·op(b) + beta·c`` in float32, ``op(x)`` = ``x.T`` when
    ``trans_x``. With ``c`` (a float32 array of the result's shape) the result is
    written into it and returned; ``beta != 0`` needs ``c``. Inputs that are
    float32 with a unit stride along either axis (C or Fortran order, slices)
    are used in place; anything else is converted once."""
    return _gemm(lib().nnk_sgemm, c_float, np.float32, a, b, float(alpha), float(beta), c, trans_a, trans_b)


def dgemm(a, b, alpha=1.0, beta=0.0, c=None, trans_a=False, trans_b=False):
    """As :func:`sgemm` in float64."""
    return _gemm(lib().nnk_dgemm, c_double, np.float64, a, b, float(alpha), float(beta), c, trans_a, trans_b)
