//! The C ABI's edge cases that a review found, called from Rust (the C test
//! programs in `tests/c` cover the rest): each call must return a status,
//! never panic, hang, abort or write through a misaligned pointer, and leave
//! its outputs as they were when it fails.

mod common;

/// The C entry points exist with the `capi` feature only (CI turns it on).
#[cfg(not(feature = "capi"))]
#[test]
fn c_entry_points() {
    common::skip("ffi_edge", "built without the `capi` feature", "cargo test --release --features capi");
}

#[cfg(feature = "capi")]
mod c_entry_points {
    use nnkern::ffi::Status;
    use nnkern::ffi::model::*;
    use nnkern::ffi::model_data::*;
    use nnkern::ffi::ops::*;
    use std::ptr::{null, null_mut};

    fn code(s: Status) -> i32 {
        s.code()
    }

    /// A small classifier (3 inputs, 4 relu units, 2 softmax outputs).
    fn model() -> *mut nnk_mlp {
        let units = [4usize, 2];
        let acts = [NNK_ACT_RELU, NNK_ACT_SOFTMAX];
        let mut m = null_mut();
        // SAFETY: valid arrays of n_layers elements; `m` is writable.
        let st = unsafe { nnk_mlp_new(3, 2, units.as_ptr(), acts.as_ptr(), 7, &mut m) };
        assert_eq!(st, code(Status::NNK_OK));
        m
    }

    fn config() -> *mut nnk_train_config {
        let mut c = null_mut();
        // SAFETY: `c` is writable.
        assert_eq!(unsafe { nnk_train_config_new(&mut c) }, code(Status::NNK_OK));
        c
    }

    /// An `indptr` whose middle offset lies past `nnz` (and then comes back
    /// down) is refused as bad input; the model is not poisoned by it.
    #[test]
    fn a_csr_offset_past_nnz_is_refused_and_the_model_lives_on() {
        let (m, c) = (model(), config());
        // SAFETY: live handles.
        assert_eq!(unsafe { nnk_train_config_set_epochs(c, 2) }, code(Status::NNK_OK));
        let indptr = [0i64, 2, 1];
        let indices = [0i32];
        let data = [1f32];
        let csr = nnk_csr {
            n_rows: 2,
            n_cols: 3,
            nnz: 1,
            indptr: indptr.as_ptr(),
            indices: indices.as_ptr(),
            data: data.as_ptr(),
        };
        let labels = [0u32, 1];
        // SAFETY: live handles; the arrays hold what `csr` says.
        let st = unsafe { nnk_mlp_fit_classifier_csr(m, c, &csr, labels.as_ptr()) };
        assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
        let x = [0.5f32; 6];
        let mut p = [0f32; 4];
        // SAFETY: live model; x holds 2 × 3 values, p 2 × 2.
        let st = unsafe { nnk_mlp_predict_proba(m, x.as_ptr(), 2, 3, p.as_mut_ptr(), 4) };
        assert_eq!(st, code(Status::NNK_OK), "the model must not be poisoned");
        // SAFETY: handles from their constructors, freed once.
        unsafe {
            nnk_mlp_free(m);
            nnk_train_config_free(c);
        }
    }

    /// Out-parameters that are not aligned for their type are refused before
    /// anything is written through them.
    #[test]
    fn misaligned_out_parameters_are_refused() {
        let mut words = [0u64; 4];
        let base = words.as_mut_ptr() as *mut u8;
        let bad = base.wrapping_add(1);
        // SAFETY: each call checks `out` before writing; `bad` is inside `words`.
        unsafe {
            assert_eq!(nnk_train_config_new(bad as *mut *mut nnk_train_config), code(Status::NNK_ERR_INVALID_ARG));
            let units = [2usize];
            let acts = [NNK_ACT_SOFTMAX];
            let st = nnk_mlp_new(3, 1, units.as_ptr(), acts.as_ptr(), 0, bad as *mut *mut nnk_mlp);
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            let m = model();
            let (mut n_in, mut n_out) = (0usize, 0usize);
            let st = nnk_mlp_layer(m, 0, &mut n_in, &mut n_out, bad as *mut u32);
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!((n_in, n_out), (0, 0), "nothing written when one output is refused");
            let st = nnk_mlp_to_bytes(m, null_mut(), 0, bad as *mut usize);
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            let mut len = 0usize;
            assert_eq!(nnk_mlp_to_bytes(m, null_mut(), 0, &mut len), code(Status::NNK_OK));
            let mut bytes = vec![0u8; len];
            assert_eq!(nnk_mlp_to_bytes(m, bytes.as_mut_ptr(), len, &mut len), code(Status::NNK_OK));
            let st = nnk_mlp_from_bytes(bytes.as_ptr(), len, bad as *mut *mut nnk_mlp);
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            nnk_mlp_free(m);
        }
        assert_eq!(words, [0; 4], "nothing was written");
    }

    /// A history call with one bad array writes nothing; a fit refused for its
    /// input keeps the history (it changed nothing), a fit that diverges
    /// leaves none.
    #[test]
    fn fit_history_after_a_failed_fit_and_with_a_bad_array() {
        let (m, c) = (model(), config());
        let x = [0.1f32, 0.2, 0.3, 0.9, 0.8, 0.7, 0.2, 0.1, 0.0, 0.7, 0.9, 0.8];
        let labels = [0u32, 1, 0, 1];
        // SAFETY: live handles; arrays hold what the sizes say.
        unsafe {
            assert_eq!(nnk_train_config_set_epochs(c, 3), code(Status::NNK_OK));
            // Validation scores too (early stopping on half of the samples).
            assert_eq!(nnk_train_config_set_early_stopping(c, 1, 0.5, 50, 1e-4), code(Status::NNK_OK));
            assert_eq!(nnk_mlp_fit_classifier(m, c, x.as_ptr(), 4, 3, labels.as_ptr()), code(Status::NNK_OK));
            let mut s = std::mem::zeroed::<nnk_fit_summary>();
            assert_eq!(nnk_mlp_fit_history(m, &mut s, null_mut(), null_mut(), 0), code(Status::NNK_OK));
            assert_eq!((s.n_iter, s.n_validation_scores), (3, 3));
            // A bad array: refused, and the good one is left as it was.
            let mut losses = [-1f64; 4];
            let mut words = [0u64; 4];
            let bad = (words.as_mut_ptr() as *mut u8).wrapping_add(4) as *mut f64;
            let st = nnk_mlp_fit_history(m, null_mut(), losses.as_mut_ptr(), bad, 4);
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(losses, [-1.0; 4], "nothing written");
            // With nothing to copy (cap 0), a misaligned array is never written.
            assert_eq!(nnk_mlp_fit_history(m, null_mut(), bad, bad, 0), code(Status::NNK_OK));
            // A fit refused for its labels: the history stays.
            let bad_labels = [0u32, 1, 0, 9];
            let st = nnk_mlp_fit_classifier(m, c, x.as_ptr(), 4, 3, bad_labels.as_ptr());
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            let mut s2 = std::mem::zeroed::<nnk_fit_summary>();
            assert_eq!(nnk_mlp_fit_history(m, &mut s2, null_mut(), null_mut(), 0), code(Status::NNK_OK));
            assert_eq!(s2.n_iter, 3);
            // A fit that diverges (a learning rate of 1e30): no history.
            assert_eq!(nnk_train_config_set_learning_rate(c, 1e30), code(Status::NNK_OK));
            assert_eq!(nnk_train_config_set_early_stopping(c, 0, 0.0, 10, 1e-4), code(Status::NNK_OK));
            let big = x.map(|v| v * 1e6);
            let st = nnk_mlp_fit_classifier(m, c, big.as_ptr(), 4, 3, labels.as_ptr());
            assert_eq!(st, code(Status::NNK_ERR_DIVERGED));
            let st = nnk_mlp_fit_history(m, &mut s2, null_mut(), null_mut(), 0);
            assert_eq!(st, code(Status::NNK_ERR_INVALID_ARG));
            nnk_mlp_free(m);
            nnk_train_config_free(c);
        }
    }

    /// Setters check the f32 the config keeps, not the f64 they are given;
    /// early stopping off does not store a validation fraction.
    #[test]
    fn config_setters_check_what_they_store() {
        let c = config();
        // SAFETY: a live config.
        unsafe {
            assert_eq!(nnk_train_config_set_beta_1(c, 1.0 - 1e-12), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_beta_2(c, 1.0 - 1e-12), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_rho(c, 1.0 - 1e-12), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_epsilon(c, 1e-50), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_learning_rate(c, 1e-50), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_momentum(c, 1.0 - 1e-12, 1), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(
                nnk_train_config_set_early_stopping(c, 1, 1.0 - 1e-12, 5, 1e-4),
                code(Status::NNK_ERR_INVALID_ARG)
            );
            // Below 0 by less than f32 holds (−1e-50 rounds to −0.0).
            assert_eq!(nnk_train_config_set_beta_1(c, -1e-50), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_l1(c, -1e-50), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_momentum(c, -1e-50, 1), code(Status::NNK_ERR_INVALID_ARG));
            assert_eq!(nnk_train_config_set_beta_1(c, 0.5), code(Status::NNK_OK));
            assert_eq!(nnk_train_config_set_epsilon(c, 1e-30), code(Status::NNK_OK));
            // Off: the fraction is not read, and a later fit works.
            assert_eq!(nnk_train_config_set_early_stopping(c, 0, f64::NAN, 10, 1e-4), code(Status::NNK_OK));
            assert_eq!(nnk_train_config_set_epochs(c, 2), code(Status::NNK_OK));
            let m = model();
            let x = [0.1f32, 0.2, 0.3, 0.9, 0.8, 0.7];
            let labels = [0u32, 1];
            assert_eq!(nnk_mlp_fit_classifier(m, c, x.as_ptr(), 2, 3, labels.as_ptr()), code(Status::NNK_OK));
            nnk_mlp_free(m);
            nnk_train_config_free(c);
        }
    }

    /// A length whose byte size overflows is an overflow error: not a panic in
    /// the overlap check, which used to run first, nor (where its sum wrapped,
    /// as with this length's 2⁴² bytes past 2⁶⁴) a false overlap.
    #[test]
    fn an_overflowing_length_is_an_overflow_error() {
        const N: usize = (1 << 62) + (1 << 40);
        let mut bufs = [[0f32; 4]; 4];
        let [w, g, m, v] = &mut bufs;
        // SAFETY: the call refuses the length before touching any buffer.
        let st = unsafe {
            nnk_adam_step(
                1 << 62,
                w.as_mut_ptr(),
                g.as_ptr(),
                m.as_mut_ptr(),
                v.as_mut_ptr(),
                1,
                1e-3,
                0.9,
                0.999,
                1e-8,
                0.0,
            )
        };
        assert_eq!(st, code(Status::NNK_ERR_OVERFLOW));
        let mut vel = [0f32; 4];
        // SAFETY: as above.
        let st = unsafe { nnk_sgd_step(N, w.as_mut_ptr(), g.as_ptr(), vel.as_mut_ptr(), 0.1, 0.9, 0, 0.0) };
        assert_eq!(st, code(Status::NNK_ERR_OVERFLOW));
    }

    /// Rows of no columns: any row count is nothing to do, at once.
    #[test]
    fn zero_width_rows_return_at_once() {
        // SAFETY: no element is accessed (every size is 0).
        unsafe {
            let st = nnk_activation_forward(NNK_ACT_SOFTMAX, usize::MAX, 0, null(), null_mut());
            assert_eq!(st, code(Status::NNK_OK));
            let st = nnk_activation_forward(NNK_ACT_LOG_SOFTMAX, usize::MAX, 0, null(), null_mut());
            assert_eq!(st, code(Status::NNK_OK));
            let st =
                nnk_dense_forward(NNK_ACT_SOFTMAX, usize::MAX, 0, 0, null(), null(), null(), null_mut(), null_mut());
            assert_eq!(st, code(Status::NNK_OK));
            let st = nnk_activation_backward(NNK_ACT_SOFTMAX, usize::MAX, 0, null(), null(), null(), null_mut());
            assert_eq!(st, code(Status::NNK_OK));
            let st = nnk_dense_backward(
                NNK_ACT_SOFTMAX,
                usize::MAX,
                0,
                0,
                null(),
                null(),
                null(),
                null(),
                null(),
                0.0,
                null_mut(),
                null_mut(),
                null_mut(),
            );
            assert_eq!(st, code(Status::NNK_OK));
        }
    }
}
