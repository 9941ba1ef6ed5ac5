import numpy as np
import pytest

import nnkern


@pytest.mark.parametrize("fn,dtype,tol", [(nnkern.sgemm, np.float32, 1e-4), (nnkern.dgemm, np.float64, 1e-12)])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm_matches_numpy(fn, dtype, tol, ta, tb):
    rng = np.random.RandomState(1)
    m, n, k = 37, 29, 53
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    ref = 1.5 * ((a.T if ta else a) @ (b.T if tb else b)) - 0.5 * c0
    c = c0.copy()
    out = fn(a, b, alpha=1.5, beta=-0.5, c=c, trans_a=ta, trans_b=tb)
    assert out is c  # written in place
    np.testing.assert_allclose(c, ref, rtol=tol, atol=tol * k)
    got = fn(a, b, trans_a=ta, trans_b=tb)
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, (a.T if ta else a) @ (b.T if tb else b), rtol=tol, atol=tol * k)


def test_sgemm_small_exact():
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    b = np.array([[7, 8], [9, 10], [11, 12]], dtype=np.float32)
    assert nnkern.sgemm(a, b).tolist() == [[58, 64], [139, 154]]


def test_views_without_copies_and_conversions():
    rng = np.random.RandomState(2)
    big = rng.standard_normal((40, 50))
    a = big[3:20, 5:30]          # strided row slice: passed with lda = 50
    b = np.asfortranarray(rng.standard_normal((25, 11)))  # column-major: passed as a transpose
    c = np.zeros((11, 17), order="F").T  # Fortran-order transpose view: C order (17×11)
    assert c.flags.c_contiguous
    np.testing.assert_allclose(nnkern.dgemm(a, b), a @ b, rtol=1e-12)
    cf = np.zeros((17, 11), order="F")  # written through its transpose
    nnkern.dgemm(a, b, c=cf)
    np.testing.assert_allclose(cf, a @ b, rtol=1e-12)
    # Non-float32 input is converted once; lists work.
    np.testing.assert_allclose(nnkern.sgemm([[1, 2]], [[3], [4]]), [[11]])
    # Negative strides are copied.
    np.testing.assert_allclose(nnkern.dgemm(a[::-1], b), a[::-1] @ b, rtol=1e-12)


def test_c_contiguous_float32_is_not_copied(monkeypatch):
    a = np.ones((4, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    calls = []
    real = np.ascontiguousarray
    monkeypatch.setattr(np, "ascontiguousarray", lambda *x, **k: calls.append(1) or real(*x, **k))
    nnkern.sgemm(a, b)
    nnkern.sgemm(a.T, b.T.copy().T, trans_a=True)  # F-order operands go in as transposes
    assert calls == []


def test_gemm_errors():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="op\\(a\\) is 2x3"):
        nnkern.sgemm(a, a)
    with pytest.raises(ValueError, match="needs an output"):
        nnkern.sgemm(a, a.T, beta=1.0)
    with pytest.raises(ValueError, match="float32"):
        nnkern.sgemm(a, a.T, c=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        nnkern.sgemm(a, a.T, c=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        nnkern.sgemm(np.ones(3, np.float32), a)
    # C aliasing an input is refused by the library with its message.
    sq = np.ones((3, 3), np.float32)
    with pytest.raises(nnkern.NnkError) as e:
        nnkern.sgemm(sq, sq, c=sq)
    assert e.value.code == 1 and e.value.status == "invalid argument"
    assert "overlap" in e.value.message and e.value.message.startswith("invalid argument")
    assert sq.tolist() == np.ones((3, 3)).tolist()  # untouched on error
