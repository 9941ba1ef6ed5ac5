//! The kernel entry points (vector math, activations, fused dense steps,
//! softmax cross-entropy, optimizer steps) with random codes (valid and not),
//! sizes, data (NaN/Inf included) and NULL pointers. Buffers are exactly as
//! long as the call's sizes say, so AddressSanitizer sees any overrun; a
//! refused call leaves every output untouched.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnkern::ffi::ops::*;
use nnkern::ffi::*;

const NNK_OK: i32 = Status::NNK_OK as i32;

#[path = "bytes.rs"]
mod bytes;
use bytes::Bytes;

fn buf(b: &mut Bytes, len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    for _ in 0..len {
        v.push(b.value());
    }
    v
}

/// The pointer of `v`, or NULL when the fuzzer says so.
fn p(v: &[f32], b: &mut Bytes) -> *const f32 {
    if b.flag(16) { std::ptr::null() } else { v.as_ptr() }
}
fn pm(v: &mut [f32], b: &mut Bytes) -> *mut f32 {
    if b.flag(16) { std::ptr::null_mut() } else { v.as_mut_ptr() }
}

fn act(b: &mut Bytes) -> u32 {
    if b.flag(12) { b.u32() } else { b.below(10) as u32 }
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let (r, c, k) = (b.below(13), b.below(13), b.below(13));
    match b.below(9) {
        0 => {
            let n = r * c;
            let x = buf(&mut b, n);
            let mut y = buf(&mut b, n);
            let fs: [unsafe extern "C" fn(*const f32, *mut f32, usize) -> i32; 6] =
                [nnk_vexp_f32, nnk_vlog_f32, nnk_vtanh_f32, nnk_vsigmoid_f32, nnk_vsoftplus_f32, nnk_vgelu_f32];
            let f = fs[b.below(6)];
            if b.flag(3) {
                let mut z = x.clone();
                let zp = z.as_mut_ptr();
                // SAFETY: in place over n valid elements.
                unsafe { f(zp, zp, n) };
            } else {
                let (xp, yp) = (p(&x, &mut b), pm(&mut y, &mut b));
                // SAFETY: x and y valid for n elements (or NULL).
                unsafe { f(xp, yp, n) };
            }
        }
        1 => {
            let x = buf(&mut b, r * c);
            let mut y = buf(&mut b, r * c);
            let y0 = y.clone();
            let (a, xp, yp) = (act(&mut b), p(&x, &mut b), pm(&mut y, &mut b));
            // SAFETY: sizes as described.
            let st = unsafe { nnk_activation_forward(a, r, c, xp, yp) };
            if st != NNK_OK {
                assert!(same(&y, &y0), "output written on error");
            }
        }
        2 => {
            let n = r * c;
            let (x, y, dy) = (buf(&mut b, n), buf(&mut b, n), buf(&mut b, n));
            let mut dx = buf(&mut b, n);
            let d0 = dx.clone();
            let a = act(&mut b);
            let (xp, yp, dyp, dxp) = (p(&x, &mut b), p(&y, &mut b), p(&dy, &mut b), pm(&mut dx, &mut b));
            // SAFETY: sizes as described.
            let st = unsafe { nnk_activation_backward(a, r, c, xp, yp, dyp, dxp) };
            if st != NNK_OK {
                assert!(same(&dx, &d0), "output written on error");
            }
        }
        3 => {
            let (x, w, bias) = (buf(&mut b, r * k), buf(&mut b, k * c), buf(&mut b, c));
            let mut z = buf(&mut b, r * c);
            let mut a = buf(&mut b, r * c);
            let (z0, a0) = (z.clone(), a.clone());
            let ac = act(&mut b);
            let (xp, wp, bp, zp, ap) = (p(&x, &mut b), p(&w, &mut b), p(&bias, &mut b), pm(&mut z, &mut b), pm(&mut a, &mut b));
            // SAFETY: sizes as described.
            let st = unsafe { nnk_dense_forward(ac, r, k, c, xp, wp, bp, zp, ap) };
            if st != NNK_OK {
                assert!(same(&z, &z0) && same(&a, &a0), "output written on error");
            }
        }
        4 => {
            let (x, w) = (buf(&mut b, r * k), buf(&mut b, k * c));
            let (z, a, da) = (buf(&mut b, r * c), buf(&mut b, r * c), buf(&mut b, r * c));
            let (mut dw, mut db, mut dx) = (buf(&mut b, k * c), buf(&mut b, c), buf(&mut b, r * k));
            let (dw0, db0, dx0) = (dw.clone(), db.clone(), dx.clone());
            let ac = act(&mut b);
            let l2 = b.value();
            let (xp, wp, zp, ap, dap) = (p(&x, &mut b), p(&w, &mut b), p(&z, &mut b), p(&a, &mut b), p(&da, &mut b));
            let (dwp, dbp, dxp) = (pm(&mut dw, &mut b), pm(&mut db, &mut b), pm(&mut dx, &mut b));
            // SAFETY: sizes as described.
            let st = unsafe { nnk_dense_backward(ac, r, k, c, xp, wp, zp, ap, dap, l2, dwp, dbp, dxp) };
            if st != NNK_OK {
                assert!(same(&dw, &dw0) && same(&db, &db0) && same(&dx, &dx0), "output written on error");
            }
        }
        5 => {
            let logits = buf(&mut b, r * c);
            let labels: Vec<u32> = (0..r).map(|_| if b.flag(10) { b.u32() } else { b.below(c.max(1)) as u32 }).collect();
            let mut d = buf(&mut b, r * c);
            let mut loss = 7.0f32;
            let d0 = d.clone();
            let lp = if b.flag(16) { std::ptr::null() } else { labels.as_ptr() };
            let (zp, dp) = (p(&logits, &mut b), pm(&mut d, &mut b));
            // SAFETY: sizes as described.
            let st = unsafe { nnk_softmax_cross_entropy(r, c, zp, lp, &mut loss, dp) };
            if st != NNK_OK {
                assert!(same(&d, &d0) && loss == 7.0, "output written on error");
            }
        }
        6 => {
            let n = r * c;
            let g = buf(&mut b, n);
            let (mut w, mut m, mut v) = (buf(&mut b, n), buf(&mut b, n), buf(&mut b, n));
            let (t, lr, b1, b2, eps, l2) = (b.u8() as u64, b.finite(), b.finite(), b.finite(), b.value(), b.value());
            let (wp, gp, mp, vp) = (pm(&mut w, &mut b), p(&g, &mut b), pm(&mut m, &mut b), pm(&mut v, &mut b));
            // SAFETY: sizes as described.
            unsafe { nnk_adam_step(n, wp, gp, mp, vp, t, lr, b1, b2, eps, l2) };
        }
        7 => {
            let n = r * c;
            let g = buf(&mut b, n);
            let (mut w, mut vel) = (buf(&mut b, n), buf(&mut b, n));
            let (lr, mom, nest, l2) = (b.finite(), b.finite(), if b.flag(8) { b.u32() } else { b.below(2) as u32 }, b.value());
            let (wp, gp, vp) = (pm(&mut w, &mut b), p(&g, &mut b), pm(&mut vel, &mut b));
            // SAFETY: sizes as described.
            unsafe { nnk_sgd_step(n, wp, gp, vp, lr, mom, nest, l2) };
        }
        _ => {
            // Overlapping and in-place buffers where they are refused or allowed.
            let n = r * c;
            let mut x = buf(&mut b, n + 4);
            let xp = x.as_mut_ptr();
            let off = b.below(5).min(n + 4);
            // SAFETY: both ranges lie inside x (n + 4 elements).
            unsafe {
                let o = xp.add(off.min(4));
                nnk_activation_forward(act(&mut b), r, c, xp, o);
                nnk_vexp_f32(xp, o, n);
            }
        }
    }
});
