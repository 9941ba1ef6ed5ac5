//! The trainer's fused first-layer step: the sparse backward pass handing
//! each row of the weight gradient to the optimizer (`ops::fused` and
//! `optim` meet here, in the layer above both).

use crate::gemm::{GemmOptions, SparseRows};
use crate::ops::act::Activation;
use crate::ops::fused::tests::data;
use crate::ops::fused::{DenseGrads, DenseShape, dense_backward_sparse_into, dense_backward_sparse_rows};
use crate::optim::{AdamParams, StepRule};
use crate::par::Par;
use crate::simd::Isa;

/// The first layer's backward pass with the optimizer step fused in
/// (`dense_backward_sparse_into` with `StepRule::rows`) gives the bits of the backward pass
/// followed by the step, for every rule, on every ISA of the machine,
/// for odd shapes (one of a row over two column panels), on 1 to 4
/// threads; wrong lengths are refused with nothing written.
#[test]
fn fused_first_layer_step_equals_backward_then_step() {
    let p = AdamParams { lr: 0.01, ..AdamParams::default() };
    let rules = [
        StepRule::sgd(0.1, 0.0, false, 0.01),
        StepRule::sgd(0.1, 0.9, true, 0.0),
        StepRule::sgd(0.1, 0.5, false, 0.03),
        StepRule::adam(&p, 3, 0.02),
        StepRule::adamw(&p, 2, 0.1),
        StepRule::rmsprop(0.01, 0.9, 1e-8, 0.01),
    ]
    .map(|r| r.unwrap());
    // Batches up to 64 rows and past them (spmm_t's two loops).
    let shapes = [(1, 1, 1), (3, 7, 5), (32, 50, 17), (33, 300, 128), (5, 9, 1030), (70, 97, 40)];
    for isa in Isa::available() {
        for (t, &(batch, n_in, n_out)) in shapes.iter().enumerate() {
            let shp = DenseShape { batch, n_in, n_out };
            let seed = 100 + 10 * t as u64;
            // The batch as rows of a larger data set, in another order.
            let x = data(2 * batch * n_in, seed, 0.7);
            let xs = SparseRows::from_dense(&x, 2 * batch, n_in).unwrap();
            let rows: Vec<usize> = (0..batch).map(|r| if r % 2 == 0 { r } else { batch + r }).collect();
            let w0 = data(n_in * n_out, seed + 1, 0.0);
            let z = data(batch * n_out, seed + 2, 0.0);
            let a = data(batch * n_out, seed + 3, 0.0);
            let da = data(batch * n_out, seed + 4, 0.0);
            let m0 = data(n_in * n_out, seed + 5, 0.0);
            // Never negative; a few subnormal lanes (the estimates' IEEE fallback,
            // lane by lane whatever the rows' alignment to the vectors).
            let v0: Vec<f32> = data(n_in * n_out, seed + 6, 0.0)
                .iter()
                .enumerate()
                .map(|(i, v)| if i % 37 == 5 { 1e-40 } else { v.abs() })
                .collect();
            for (ri, rule) in rules.iter().enumerate() {
                let act = [Activation::Relu, Activation::Tanh, Activation::Identity][ri % 3];
                let k = rule.state_buffers();
                // RMSprop's mean square (its first buffer) is never negative.
                let ms = if ri == 5 { &v0 } else { &m0 };
                let state = |i: usize, v: &[f32]| if k > i { v.to_vec() } else { Vec::new() };
                for threads in [1, 2, 4] {
                    let opts = GemmOptions { isa: Some(isa), par: Par::Threads(threads), ..GemmOptions::default() };
                    // Unfused: the gradient, then the step.
                    let (mut w, mut s1, mut s2) = (w0.clone(), state(0, ms), state(1, &v0));
                    let (mut dw, mut db, mut dz) =
                        (vec![0.0; n_in * n_out], vec![0.0; n_out], vec![0.0; batch * n_out]);
                    let g = DenseGrads { dw: &mut dw, db: &mut db, dx: None, dz: &mut dz };
                    dense_backward_sparse_rows(act, shp, &xs, &rows, &w0, &z, &a, &da, 0.0, g, &opts).unwrap();
                    let o = crate::Options { isa: Some(isa), par: opts.par };
                    rule.apply_opts(&mut w, &dw, &mut s1, &mut s2, &o).unwrap();
                    // Fused.
                    let (mut fw, mut f1, mut f2) = (w0.clone(), state(0, ms), state(1, &v0));
                    let (mut fdb, mut fdz) = (vec![f32::NAN; n_out], vec![f32::NAN; batch * n_out]);
                    let zad = (&z[..], &a[..], &da[..]);
                    let sink = rule.rows(&mut fw, &mut f1, &mut f2, n_out).unwrap();
                    dense_backward_sparse_into(act, shp, &xs, &rows, zad, &mut fdz, &mut fdb, &sink, &opts).unwrap();
                    drop(sink);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let what = format!("{isa:?} {batch}x{n_in}x{n_out} rule {ri} threads {threads}");
                    assert_eq!(bits(&fw), bits(&w), "w, {what}");
                    assert_eq!(bits(&f1), bits(&s1), "s1, {what}");
                    assert_eq!(bits(&f2), bits(&s2), "s2, {what}");
                    assert_eq!(bits(&fdb), bits(&db), "db, {what}");
                    assert_eq!(bits(&fdz), bits(&dz), "dz, {what}");
                    assert!(fw != w0, "the step changed the weights, {what}");
                }
            }
        }
    }
    // Wrong lengths (or weights of another shape): an error, nothing written.
    let (batch, n_in, n_out) = (3, 7, 5);
    let shp = DenseShape { batch, n_in, n_out };
    let x = data(batch * n_in, 1, 0.5);
    let xs = SparseRows::from_dense(&x, batch, n_in).unwrap();
    let zad = data(batch * n_out, 2, 0.0);
    let rule = rules[3];
    let opts = GemmOptions::default();
    let nw = n_in * n_out;
    for bad in 0..7 {
        let mut w = vec![1.0f32; [nw - 1, nw + n_out][..].get(bad).copied().unwrap_or(nw)];
        let mut s1 = vec![0.5f32; nw - usize::from(bad == 2)];
        let mut s2 = vec![0.25f32; nw - usize::from(bad == 3)];
        let mut dz = vec![2.0f32; batch * n_out - usize::from(bad == 4)];
        let mut db = vec![3.0f32; n_out - usize::from(bad == 5)];
        // A row out of the data set.
        let rows: &[usize] = if bad == 6 { &[0, 1, 3] } else { &[2, 0, 1] };
        let zad = (&zad[..], &zad[..], &zad[..]);
        let r = rule.rows(&mut w, &mut s1, &mut s2, n_out).and_then(|sink| {
            dense_backward_sparse_into(Activation::Relu, shp, &xs, rows, zad, &mut dz, &mut db, &sink, &opts)
        });
        assert!(r.is_err(), "case {bad} was accepted");
        assert!(w.iter().all(|&v| v == 1.0) && s1.iter().all(|&v| v == 0.5) && s2.iter().all(|&v| v == 0.25));
        assert!(dz.iter().all(|&v| v == 2.0) && db.iter().all(|&v| v == 3.0), "case {bad} wrote");
    }
}
