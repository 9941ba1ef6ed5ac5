//! `nnk_sgemm` / `nnk_dgemm` with random layouts, transposes (valid and not),
//! sizes, leading dimensions (sometimes too small), alpha/beta and NULL
//! pointers. Buffers are allocated at exactly the extent the CBLAS contract
//! describes, so AddressSanitizer catches any read or write beyond it. On
//! success the result equals an f64 reference exactly (small-integer data and
//! dyadic alpha/beta make every rounding exact); on failure C is untouched.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnkern::error::Status;

const NNK_OK: i32 = Status::NNK_OK as i32;
use nnkern::ffi::gemm::{nnk_dgemm, nnk_sgemm};

#[path = "bytes.rs"]
mod bytes;
use bytes::Bytes;

/// Elements spanned by a stored matrix: `major` lines of `minor` elements, `ld` apart.
fn extent(major: usize, minor: usize, ld: usize) -> usize {
    if major == 0 || minor == 0 { 0 } else { (major - 1) * ld + minor }
}

fn code(b: &mut Bytes, valid: &[i32]) -> i32 {
    let i = b.below(valid.len() + 1);
    if i < valid.len() { valid[i] } else { b.u32() as i32 }
}

trait F: Copy + PartialEq + std::fmt::Debug {
    fn from(v: f64) -> Self;
    fn to(self) -> f64;
    #[allow(clippy::too_many_arguments)]
    unsafe fn call(
        l: i32, ta: i32, tb: i32, m: usize, n: usize, k: usize, al: Self, a: *const Self, lda: usize,
        b: *const Self, ldb: usize, be: Self, c: *mut Self, ldc: usize,
    ) -> i32;
}
impl F for f32 {
    fn from(v: f64) -> Self { v as f32 }
    fn to(self) -> f64 { self as f64 }
    unsafe fn call(
        l: i32, ta: i32, tb: i32, m: usize, n: usize, k: usize, al: f32, a: *const f32, lda: usize,
        b: *const f32, ldb: usize, be: f32, c: *mut f32, ldc: usize,
    ) -> i32 {
        // SAFETY: the buffers span what the arguments describe (or the call is refused).
        unsafe { nnk_sgemm(l, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc) }
    }
}
impl F for f64 {
    fn from(v: f64) -> Self { v }
    fn to(self) -> f64 { self }
    unsafe fn call(
        l: i32, ta: i32, tb: i32, m: usize, n: usize, k: usize, al: f64, a: *const f64, lda: usize,
        b: *const f64, ldb: usize, be: f64, c: *mut f64, ldc: usize,
    ) -> i32 {
        // SAFETY: as for f32.
        unsafe { nnk_dgemm(l, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc) }
    }
}

fn ptr_of<T>(v: &[T], null_if_empty: bool) -> *const T {
    if v.is_empty() && null_if_empty { std::ptr::null() } else { v.as_ptr() }
}

fn run<T: F>(b: &mut Bytes) {
    let layout = code(b, &[101, 102]);
    let ta = code(b, &[111, 112, 113]);
    let tb = code(b, &[111, 112, 113]);
    let big = b.flag(4);
    let dim = |b: &mut Bytes| if big { b.below(75) } else { b.below(9) };
    let (m, n, k) = (dim(b), dim(b), dim(b));
    let row = layout == 101;
    let (tra, trb) = (ta == 112 || ta == 113, tb == 112 || tb == 113);
    // Stored (rows, cols) of A, B, C, then (major, minor) by layout.
    let sa = if tra { (k, m) } else { (m, k) };
    let sb = if trb { (n, k) } else { (k, n) };
    let sc = (m, n);
    let mm = |s: (usize, usize)| if row { s } else { (s.1, s.0) };
    let (ma, mb, mc) = (mm(sa), mm(sb), mm(sc));
    let mut short = false;
    let mut ld = |b: &mut Bytes, minor: usize| {
        let min = minor.max(1);
        if b.flag(8) && min > 1 {
            short = true;
            min - 1 - b.below(min - 1)
        } else {
            min + b.below(4)
        }
    };
    let (lda, ldb, ldc) = (ld(b, ma.1), ld(b, mb.1), ld(b, mc.1));
    let alphas = [0.0, 1.0, -1.5, 2.25, 0.5];
    let betas = [0.0, 1.0, -1.5, 2.25, f64::NAN];
    let alpha = alphas[b.below(alphas.len())];
    let beta = betas[b.below(betas.len())];
    let reads_ab = m > 0 && n > 0 && k > 0 && alpha != 0.0;
    let data = |b: &mut Bytes, len: usize, poison: bool| -> Vec<T> {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(if poison { T::from(f64::NAN) } else { T::from((b.below(7) as f64) - 3.0) });
        }
        v
    };
    let a = data(b, extent(ma.0, ma.1, lda), !reads_ab);
    let bm = data(b, extent(mb.0, mb.1, ldb), !reads_ab);
    let c_nan = beta == 0.0;
    let mut c = data(b, extent(mc.0, mc.1, ldc), c_nan);
    let before = c.clone();
    let nulls = b.u8();
    let (ap, bp) = (ptr_of(&a, nulls & 1 != 0), ptr_of(&bm, nulls & 2 != 0));
    let cp = if c.is_empty() && nulls & 4 != 0 { std::ptr::null_mut() } else { c.as_mut_ptr() };
    // SAFETY: every pointer spans the extent the arguments describe.
    let st = unsafe { T::call(layout, ta, tb, m, n, k, T::from(alpha), ap, lda, bp, ldb, T::from(beta), cp, ldc) };
    let valid_enums = (layout == 101 || layout == 102) && [111, 112, 113].contains(&ta) && [111, 112, 113].contains(&tb);
    if !valid_enums || short {
        assert_ne!(st, NNK_OK, "accepted layout {layout} trans {ta}/{tb} ld {lda}/{ldb}/{ldc} for {m}x{n}x{k}");
        assert!(c.iter().zip(&before).all(|(x, y)| x.to().to_bits() == y.to().to_bits()), "C changed on error");
        return;
    }
    // SAFETY: the message is a NUL-terminated thread-local string.
    let msg = unsafe { std::ffi::CStr::from_ptr(nnkern::ffi::nnk_last_error_message()) };
    assert_eq!(st, NNK_OK, "refused a valid call: {msg:?}");
    // The reference, element by element.
    let at = |v: &[T], (r, cl): (usize, usize), ld: usize| -> T {
        if row { v[r * ld + cl] } else { v[cl * ld + r] }
    };
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            if reads_ab {
                for p in 0..k {
                    let x = if tra { at(&a, (p, i), lda) } else { at(&a, (i, p), lda) };
                    let y = if trb { at(&bm, (j, p), ldb) } else { at(&bm, (p, j), ldb) };
                    acc += x.to() * y.to();
                }
            }
            let old = at(&before, (i, j), ldc).to();
            let want = if beta == 0.0 { alpha * acc } else { alpha * acc + beta * old };
            let got = at(&c, (i, j), ldc).to();
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "C[{i},{j}] = {got}, want {want} ({m}x{n}x{k} layout {layout} {ta}/{tb} alpha {alpha} beta {beta})"
            );
        }
    }
    // Padding between lines (ld > width) is never written.
    for (idx, (x, y)) in c.iter().zip(&before).enumerate() {
        let (maj, min) = (idx / ldc, idx % ldc);
        let inside = if row { maj < m && min < n } else { maj < n && min < m };
        if !inside {
            assert!(x.to().to_bits() == y.to().to_bits(), "padding element {idx} written");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    if b.flag(2) { run::<f32>(&mut b) } else { run::<f64>(&mut b) }
});
