/* A model's contents from C: layers, weights and biases in and out, the model
 * as bytes, the last fit's history, partial fits, and the config setters that
 * scikit-learn's parameters map to; every function's bad-input answers
 * (NULL handles, wrong lengths, out-of-range values, corrupt bytes). Built by
 * tests/c_api.rs (-std=c99 -Wall -Werror), plain, sanitized and under valgrind. */
#include "nnkern.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { N = 60, D = 4, H = 5, K = 3 };

static float X[N * D];
static uint32_t Y[N];

static void make_data(void) {
    uint32_t s = 12345u;
    for (int i = 0; i < N * D; i++) {
        s = s * 1664525u + 1013904223u;
        X[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    for (int i = 0; i < N; i++) { /* the arg-max of three fixed linear scores */
        const float *r = X + i * D;
        float a = r[0] + r[1], b = r[2] - r[0], c = r[3] - r[1];
        Y[i] = a > b ? (a > c ? 0u : 2u) : (b > c ? 1u : 2u);
    }
}

static nnk_mlp *new_model(void) {
    size_t units[2] = {H, K};
    uint32_t acts[2] = {NNK_ACT_RELU, NNK_ACT_SOFTMAX};
    nnk_mlp *m = NULL;
    CHECK(nnk_mlp_new(D, 2, units, acts, 7, &m) == NNK_OK && m, "mlp_new");
    return m;
}

static double lrs[8];
static int32_t record_lr(const nnk_epoch_info *info, void *user) {
    (void)user;
    if (info->epoch >= 1 && info->epoch <= 8) lrs[info->epoch - 1] = info->learning_rate;
    return 0;
}

/* Trains a fresh model for 3 epochs with `c` and returns the learning rates seen. */
static void lr_run(nnk_train_config *c, double out[3]) {
    nnk_mlp *m = new_model();
    CHECK(nnk_train_config_set_callback(c, record_lr, NULL) == NNK_OK, "callback");
    CHECK(nnk_train_config_set_epochs(c, 3) == NNK_OK, "epochs");
    CHECK(nnk_mlp_fit_classifier(m, c, X, N, D, Y) == NNK_OK, "fit for learning rates");
    memcpy(out, lrs, 3 * sizeof(double));
    nnk_mlp_free(m);
}

/* Trains a fresh model for 3 epochs with `c`; its probabilities on X into `p`. */
static void fit_probs(nnk_train_config *c, float *p) {
    nnk_mlp *m = new_model();
    CHECK(nnk_train_config_set_callback(c, NULL, NULL) == NNK_OK, "no callback");
    CHECK(nnk_train_config_set_epochs(c, 3) == NNK_OK, "epochs");
    CHECK(nnk_mlp_fit_classifier(m, c, X, N, D, Y) == NNK_OK, "fit");
    CHECK(nnk_mlp_predict_proba(m, X, N, D, p, N * K) == NNK_OK, "predict");
    nnk_mlp_free(m);
}

static void layers_and_params(void) {
    nnk_mlp *m = new_model();
    CHECK(nnk_mlp_n_layers(m) == 2, "n_layers");
    CHECK(nnk_mlp_n_layers(NULL) == 0, "n_layers(NULL)");
    size_t n_in = 0, n_out = 0;
    uint32_t act = 99;
    CHECK(nnk_mlp_layer(m, 0, &n_in, &n_out, &act) == NNK_OK && n_in == D && n_out == H && act == NNK_ACT_RELU,
          "layer 0: %zu %zu %u", n_in, n_out, act);
    CHECK(nnk_mlp_layer(m, 1, &n_in, &n_out, &act) == NNK_OK && n_in == H && n_out == K && act == NNK_ACT_SOFTMAX,
          "layer 1");
    CHECK(nnk_mlp_layer(m, 1, NULL, NULL, NULL) == NNK_OK, "layer with NULL outputs");
    CHECK(nnk_mlp_layer(m, 2, &n_in, &n_out, &act) == NNK_ERR_INVALID_ARG, "layer 2 does not exist");
    CHECK(nnk_mlp_layer(NULL, 0, &n_in, &n_out, &act) == NNK_ERR_NULL_POINTER, "layer(NULL)");

    float w[D * H], b[H], w2[D * H], b2[H];
    CHECK(nnk_mlp_get_params(m, 0, w, D * H, b, H) == NNK_OK, "get_params");
    CHECK(nnk_mlp_get_params(m, 0, w, D * H - 1, b, H) == NNK_ERR_SHAPE, "get_params: short w");
    CHECK(nnk_mlp_get_params(m, 0, w, D * H, b, H + 1) == NNK_ERR_SHAPE, "get_params: long b");
    CHECK(nnk_mlp_get_params(m, 0, NULL, D * H, b, H) == NNK_ERR_NULL_POINTER, "get_params: NULL w");
    CHECK(nnk_mlp_get_params(m, 5, w, D * H, b, H) == NNK_ERR_INVALID_ARG, "get_params: layer 5");
    CHECK(nnk_mlp_get_params(NULL, 0, w, D * H, b, H) == NNK_ERR_NULL_POINTER, "get_params(NULL)");
    int nonzero = 0;
    for (int i = 0; i < D * H; i++) nonzero += w[i] != 0.0f;
    CHECK(nonzero == D * H, "initial weights are drawn, %d nonzero", nonzero);

    for (int i = 0; i < D * H; i++) w2[i] = (float)i * 0.01f - 0.1f;
    for (int i = 0; i < H; i++) b2[i] = (float)i * 0.5f;
    CHECK(nnk_mlp_set_params(m, 0, w2, D * H, b2, H) == NNK_OK, "set_params");
    CHECK(nnk_mlp_get_params(m, 0, w, D * H, b, H) == NNK_OK, "get after set");
    CHECK(memcmp(w, w2, sizeof w) == 0 && memcmp(b, b2, sizeof b) == 0, "set then get gives the same bits");
    /* W is n_in × n_out row-major: input 1's weight to unit 2 is w[1*H + 2]. */
    float xin[D] = {0, 1, 0, 0}, proba[K];
    CHECK(nnk_mlp_predict_proba(m, xin, 1, D, proba, K) == NNK_OK, "predict with set weights");

    float bad[D * H];
    memcpy(bad, w2, sizeof bad);
    bad[3] = NAN;
    CHECK(nnk_mlp_set_params(m, 0, bad, D * H, b2, H) == NNK_ERR_NON_FINITE, "set_params refuses NaN");
    bad[3] = INFINITY;
    CHECK(nnk_mlp_set_params(m, 0, w2, D * H, b2, H) == NNK_OK, "reset");
    CHECK(nnk_mlp_set_params(m, 1, bad, D * H, b2, H) == NNK_ERR_SHAPE, "set_params: layer 1 is 5x3");
    CHECK(nnk_mlp_set_params(m, 0, w2, D * H, NULL, H) == NNK_ERR_NULL_POINTER, "set_params: NULL b");
    CHECK(nnk_mlp_set_params(m, 9, w2, D * H, b2, H) == NNK_ERR_INVALID_ARG, "set_params: layer 9");
    CHECK(nnk_mlp_set_params(NULL, 0, w2, D * H, b2, H) == NNK_ERR_NULL_POINTER, "set_params(NULL)");
    CHECK(nnk_mlp_get_params(m, 0, w, D * H, b, H) == NNK_OK && memcmp(w, w2, sizeof w) == 0,
          "a refused set changes nothing");
    nnk_mlp_free(m);
}

static void bytes_round_trip(void) {
    nnk_mlp *m = new_model();
    size_t len = 0;
    CHECK(nnk_mlp_to_bytes(m, NULL, 0, &len) == NNK_OK && len > 0, "to_bytes size query");
    unsigned char *buf = malloc(len);
    size_t len2 = 0;
    CHECK(nnk_mlp_to_bytes(m, buf, len - 1, &len2) == NNK_ERR_SHAPE && len2 == len, "to_bytes: cap too small");
    CHECK(nnk_mlp_to_bytes(m, buf, len, &len2) == NNK_OK && len2 == len, "to_bytes");
    CHECK(nnk_mlp_to_bytes(m, buf, len, NULL) == NNK_ERR_NULL_POINTER, "to_bytes: NULL len");
    CHECK(nnk_mlp_to_bytes(NULL, buf, len, &len2) == NNK_ERR_NULL_POINTER, "to_bytes(NULL)");

    nnk_mlp *m2 = NULL;
    CHECK(nnk_mlp_from_bytes(buf, len, &m2) == NNK_OK && m2, "from_bytes");
    float p1[N * K], p2[N * K];
    CHECK(nnk_mlp_predict_proba(m, X, N, D, p1, N * K) == NNK_OK, "predict original");
    CHECK(m2 && nnk_mlp_predict_proba(m2, X, N, D, p2, N * K) == NNK_OK, "predict copy");
    CHECK(memcmp(p1, p2, sizeof p1) == 0, "the copy predicts the same bits");
    nnk_mlp_free(m2);

    nnk_mlp *m3 = NULL;
    CHECK(nnk_mlp_from_bytes(buf, len - 3, &m3) == NNK_ERR_FORMAT && !m3, "from_bytes: truncated");
    buf[len / 2] ^= 0x5a;
    CHECK(nnk_mlp_from_bytes(buf, len, &m3) == NNK_ERR_FORMAT && !m3, "from_bytes: corrupt");
    CHECK(nnk_mlp_from_bytes(buf, 0, &m3) == NNK_ERR_FORMAT && !m3, "from_bytes: empty");
    CHECK(nnk_mlp_from_bytes(NULL, 10, &m3) == NNK_ERR_NULL_POINTER, "from_bytes: NULL buf");
    CHECK(nnk_mlp_from_bytes(buf, len, NULL) == NNK_ERR_NULL_POINTER, "from_bytes: NULL out");
    free(buf);
    nnk_mlp_free(m);
}

static void history_and_partial_fit(void) {
    nnk_mlp *m = new_model();
    nnk_train_config *c = NULL;
    CHECK(nnk_train_config_new(&c) == NNK_OK, "config");
    nnk_fit_summary s;
    CHECK(nnk_mlp_fit_history(m, &s, NULL, NULL, 0) == NNK_ERR_INVALID_ARG, "no history before a fit");
    CHECK(nnk_train_config_set_epochs(c, 6) == NNK_OK && nnk_train_config_set_batch_size(c, 16) == NNK_OK, "cfg");
    CHECK(nnk_train_config_set_learning_rate(c, 0.01) == NNK_OK, "lr");
    CHECK(nnk_mlp_fit_classifier(m, c, X, N, D, Y) == NNK_OK, "fit");
    memset(&s, 0, sizeof s);
    double loss[10], val[10];
    CHECK(nnk_mlp_fit_history(m, &s, loss, val, 10) == NNK_OK, "history");
    CHECK(s.n_iter == 6 && s.n_validation_scores == 0, "n_iter %zu, %zu scores", s.n_iter, s.n_validation_scores);
    CHECK(s.samples_seen == 6 * N && s.steps == 6 * 4, "seen %llu, steps %llu", (unsigned long long)s.samples_seen,
          (unsigned long long)s.steps);
    double best = INFINITY;
    for (int e = 0; e < 6; e++) best = loss[e] < best ? loss[e] : best;
    CHECK(isfinite(loss[0]) && loss[5] < loss[0] && s.best_loss == best, "losses fall; best_loss is their minimum");
    CHECK(isnan(s.best_validation_score) && s.restored_epoch == 0 && !s.stopped_early, "no validation");
    CHECK(nnk_mlp_fit_history(m, NULL, loss, NULL, 2) == NNK_OK, "history: part of the curve, no summary");
    CHECK(nnk_mlp_fit_history(NULL, &s, NULL, NULL, 0) == NNK_ERR_NULL_POINTER, "history(NULL)");

    /* Early stopping records a validation score per epoch. */
    CHECK(nnk_train_config_set_early_stopping(c, 1, 0.2, 3, 1e-4) == NNK_OK, "early stopping");
    CHECK(nnk_mlp_fit_classifier(m, c, X, N, D, Y) == NNK_OK, "fit with early stopping");
    CHECK(nnk_mlp_fit_history(m, &s, loss, val, 10) == NNK_OK, "history");
    CHECK(s.n_validation_scores == s.n_iter && s.n_iter >= 1 && s.restored_epoch >= 1, "scores per epoch");
    double vbest = -INFINITY;
    for (size_t e = 0; e < s.n_validation_scores; e++) vbest = val[e] > vbest ? val[e] : vbest;
    CHECK(s.best_validation_score == vbest && isnan(s.best_loss), "best validation score");
    CHECK(nnk_train_config_set_early_stopping(c, 0, 0.1, 10, 1e-4) == NNK_OK, "early stopping off");

    /* A fit refused for its input changes nothing, its history included
       (one that runs and diverges leaves none: tests/ffi_edge.rs). */
    float xbad[N * D];
    memcpy(xbad, X, sizeof xbad);
    xbad[7] = NAN;
    size_t n_iter = s.n_iter;
    CHECK(nnk_mlp_fit_classifier(m, c, xbad, N, D, Y) == NNK_ERR_NON_FINITE, "fit on NaN");
    CHECK(nnk_mlp_fit_history(m, &s, NULL, NULL, 0) == NNK_OK && s.n_iter == n_iter, "history kept after a refused fit");

    /* Two partial fits without shuffling equal one fit of two epochs. */
    CHECK(nnk_train_config_set_shuffle(c, 0) == NNK_OK, "shuffle off");
    nnk_mlp *a = new_model(), *b = new_model();
    CHECK(nnk_train_config_set_epochs(c, 2) == NNK_OK, "2 epochs");
    CHECK(nnk_mlp_fit_classifier(a, c, X, N, D, Y) == NNK_OK, "fit 2 epochs");
    CHECK(nnk_train_config_set_epochs(c, 50) == NNK_OK, "epochs do not matter to partial_fit");
    CHECK(nnk_mlp_partial_fit_classifier(b, c, X, N, D, Y) == NNK_OK, "partial fit 1");
    CHECK(nnk_mlp_partial_fit_classifier(b, c, X, N, D, Y) == NNK_OK, "partial fit 2");
    CHECK(nnk_mlp_fit_history(b, &s, NULL, NULL, 0) == NNK_OK && s.n_iter == 1 && s.samples_seen == 2 * N,
          "partial fit history: %zu epochs, %llu samples", s.n_iter, (unsigned long long)s.samples_seen);
    float pa[N * K], pb[N * K];
    CHECK(nnk_mlp_predict_proba(a, X, N, D, pa, N * K) == NNK_OK, "predict a");
    CHECK(nnk_mlp_predict_proba(b, X, N, D, pb, N * K) == NNK_OK, "predict b");
    CHECK(memcmp(pa, pb, sizeof pa) == 0, "partial fits = one fit, bit for bit");
    CHECK(nnk_mlp_partial_fit_classifier(b, c, X, N, D - 1, Y) == NNK_ERR_SHAPE, "partial fit: wrong width");
    CHECK(nnk_mlp_partial_fit_classifier(NULL, c, X, N, D, Y) == NNK_ERR_NULL_POINTER, "partial fit(NULL)");
    CHECK(nnk_mlp_partial_fit_classifier(b, NULL, X, N, D, Y) == NNK_ERR_NULL_POINTER, "partial fit: NULL config");

    /* A regressor's partial fit, and the same target checks as its fit. */
    size_t units[2] = {H, 2};
    uint32_t acts[2] = {NNK_ACT_TANH, NNK_ACT_IDENTITY};
    nnk_mlp *r = NULL;
    CHECK(nnk_mlp_new(D, 2, units, acts, 3, &r) == NNK_OK, "regressor");
    float t[N * 2];
    for (int i = 0; i < N; i++) { t[2 * i] = X[i * D] + X[i * D + 1]; t[2 * i + 1] = X[i * D + 2]; }
    CHECK(nnk_mlp_partial_fit_regressor(r, c, X, N, D, t, 2) == NNK_OK, "partial fit regressor");
    CHECK(nnk_mlp_partial_fit_regressor(r, c, X, N, D, t, 1) == NNK_ERR_SHAPE, "partial fit regressor: 1 target");
    CHECK(nnk_mlp_fit_history(r, &s, NULL, NULL, 0) == NNK_OK && s.n_iter == 1, "regressor history");
    nnk_mlp_free(r);
    nnk_mlp_free(a);
    nnk_mlp_free(b);
    nnk_mlp_free(m);
    nnk_train_config_free(c);
}

static void setters(void) {
    nnk_train_config *c = NULL;
    CHECK(nnk_train_config_new(&c) == NNK_OK, "config");
    /* Each setter: a valid value, the edges it refuses, and a NULL config. */
    CHECK(nnk_train_config_set_beta_1(c, 0.8) == NNK_OK && nnk_train_config_set_beta_1(c, 0.0) == NNK_OK, "beta_1");
    CHECK(nnk_train_config_set_beta_1(c, 1.0) == NNK_ERR_INVALID_ARG, "beta_1 = 1");
    CHECK(nnk_train_config_set_beta_1(c, -0.1) == NNK_ERR_INVALID_ARG, "beta_1 < 0");
    CHECK(nnk_train_config_set_beta_1(c, NAN) == NNK_ERR_INVALID_ARG, "beta_1 NaN");
    CHECK(nnk_train_config_set_beta_2(c, 0.99) == NNK_OK, "beta_2");
    CHECK(nnk_train_config_set_beta_2(c, 1.5) == NNK_ERR_INVALID_ARG, "beta_2 > 1");
    CHECK(nnk_train_config_set_epsilon(c, 1e-7) == NNK_OK, "epsilon");
    CHECK(nnk_train_config_set_epsilon(c, 0.0) == NNK_ERR_INVALID_ARG, "epsilon = 0");
    CHECK(nnk_train_config_set_epsilon(c, INFINITY) == NNK_ERR_INVALID_ARG, "epsilon inf");
    CHECK(nnk_train_config_set_rho(c, 0.95) == NNK_OK, "rho");
    CHECK(nnk_train_config_set_rho(c, 1.0) == NNK_ERR_INVALID_ARG, "rho = 1");
    CHECK(nnk_train_config_set_l1(c, 1e-3) == NNK_OK && nnk_train_config_set_l1(c, 0.0) == NNK_OK, "l1");
    CHECK(nnk_train_config_set_l1(c, -1e-3) == NNK_ERR_INVALID_ARG, "l1 < 0");
    CHECK(nnk_train_config_set_clip_norm(c, 5.0) == NNK_OK && nnk_train_config_set_clip_norm(c, 0.0) == NNK_OK,
          "clip_norm");
    CHECK(nnk_train_config_set_clip_norm(c, -1.0) == NNK_ERR_INVALID_ARG, "clip_norm < 0");
    CHECK(nnk_train_config_set_shuffle(c, 0) == NNK_OK && nnk_train_config_set_shuffle(c, 1) == NNK_OK, "shuffle");
    CHECK(nnk_train_config_set_shuffle(c, 2) == NNK_ERR_INVALID_ARG, "shuffle = 2");
    CHECK(nnk_train_config_set_warm_start(c, 1) == NNK_OK && nnk_train_config_set_warm_start(c, 0) == NNK_OK,
          "warm_start");
    CHECK(nnk_train_config_set_warm_start(c, 7) == NNK_ERR_INVALID_ARG, "warm_start = 7");
    CHECK(nnk_train_config_set_tol(c, 0.0) == NNK_OK && nnk_train_config_set_tol(c, 1e-3) == NNK_OK, "tol");
    CHECK(nnk_train_config_set_tol(c, -1e-3) == NNK_ERR_INVALID_ARG, "tol < 0");
    CHECK(nnk_train_config_set_n_iter_no_change(c, 3) == NNK_OK, "n_iter_no_change");
    CHECK(nnk_train_config_set_n_iter_no_change(c, 0) == NNK_ERR_INVALID_ARG, "n_iter_no_change = 0");
    CHECK(nnk_train_config_set_validation_fraction(c, 0.25) == NNK_OK, "validation_fraction");
    CHECK(nnk_train_config_set_validation_fraction(c, 0.0) == NNK_ERR_INVALID_ARG, "validation_fraction = 0");
    CHECK(nnk_train_config_set_validation_fraction(c, 1.0) == NNK_ERR_INVALID_ARG, "validation_fraction = 1");
    CHECK(nnk_train_config_set_power_t(c, 0.25) == NNK_OK, "power_t");
    CHECK(nnk_train_config_set_power_t(c, -0.5) == NNK_ERR_INVALID_ARG, "power_t < 0");
    CHECK(nnk_train_config_set_step_factor(c, 0.1) == NNK_OK && nnk_train_config_set_step_factor(c, 1.0) == NNK_OK,
          "step factor");
    CHECK(nnk_train_config_set_step_factor(c, 0.0) == NNK_ERR_INVALID_ARG, "step factor = 0");
    CHECK(nnk_train_config_set_step_factor(c, 1.5) == NNK_ERR_INVALID_ARG, "step factor > 1");
    CHECK(nnk_train_config_set_beta_1(NULL, 0.9) == NNK_ERR_NULL_POINTER, "beta_1(NULL)");
    CHECK(nnk_train_config_set_beta_2(NULL, 0.9) == NNK_ERR_NULL_POINTER, "beta_2(NULL)");
    CHECK(nnk_train_config_set_epsilon(NULL, 1e-8) == NNK_ERR_NULL_POINTER, "epsilon(NULL)");
    CHECK(nnk_train_config_set_rho(NULL, 0.9) == NNK_ERR_NULL_POINTER, "rho(NULL)");
    CHECK(nnk_train_config_set_l1(NULL, 0.0) == NNK_ERR_NULL_POINTER, "l1(NULL)");
    CHECK(nnk_train_config_set_clip_norm(NULL, 1.0) == NNK_ERR_NULL_POINTER, "clip_norm(NULL)");
    CHECK(nnk_train_config_set_shuffle(NULL, 1) == NNK_ERR_NULL_POINTER, "shuffle(NULL)");
    CHECK(nnk_train_config_set_warm_start(NULL, 1) == NNK_ERR_NULL_POINTER, "warm_start(NULL)");
    CHECK(nnk_train_config_set_tol(NULL, 0.0) == NNK_ERR_NULL_POINTER, "tol(NULL)");
    CHECK(nnk_train_config_set_n_iter_no_change(NULL, 1) == NNK_ERR_NULL_POINTER, "n_iter_no_change(NULL)");
    CHECK(nnk_train_config_set_validation_fraction(NULL, 0.1) == NNK_ERR_NULL_POINTER, "validation_fraction(NULL)");
    CHECK(nnk_train_config_set_power_t(NULL, 0.5) == NNK_ERR_NULL_POINTER, "power_t(NULL)");
    CHECK(nnk_train_config_set_step_factor(NULL, 0.5) == NNK_ERR_NULL_POINTER, "step_factor(NULL)");
    nnk_train_config_free(c);

    /* The step factor applies whether set before or after the schedule. */
    double before[3], after[3];
    nnk_train_config *c1 = NULL, *c2 = NULL;
    CHECK(nnk_train_config_new(&c1) == NNK_OK && nnk_train_config_new(&c2) == NNK_OK, "configs");
    CHECK(nnk_train_config_set_step_factor(c1, 0.1) == NNK_OK, "factor first");
    CHECK(nnk_train_config_set_schedule(c1, NNK_SCHEDULE_STEP, 1.0) == NNK_OK, "then schedule");
    lr_run(c1, before);
    CHECK(nnk_train_config_set_schedule(c2, NNK_SCHEDULE_STEP, 1.0) == NNK_OK, "schedule first");
    CHECK(nnk_train_config_set_step_factor(c2, 0.1) == NNK_OK, "then factor");
    lr_run(c2, after);
    CHECK(fabs(before[1] - 0.1 * before[0]) < 1e-9 && fabs(before[2] - 0.01 * before[0]) < 1e-9,
          "step factor 0.1: %g %g %g", before[0], before[1], before[2]);
    CHECK(memcmp(before, after, sizeof before) == 0, "the order of the two setters does not matter");
    /* power_t (the rate changes per batch, so the weights tell): set before
     * the schedule or after it, the same training; another power_t, another. */
    float pa[N * K], pb[N * K], pc[N * K];
    CHECK(nnk_train_config_set_power_t(c1, 0.25) == NNK_OK, "power_t first");
    CHECK(nnk_train_config_set_schedule(c1, NNK_SCHEDULE_INVSCALING, 0.25) == NNK_OK, "invscaling 0.25");
    fit_probs(c1, pa);
    CHECK(nnk_train_config_set_schedule(c2, NNK_SCHEDULE_INVSCALING, 0.5) == NNK_OK, "invscaling 0.5");
    fit_probs(c2, pc);
    CHECK(nnk_train_config_set_power_t(c2, 0.25) == NNK_OK, "then power_t 0.25");
    fit_probs(c2, pb);
    CHECK(memcmp(pa, pb, sizeof pa) == 0, "power_t before or after the schedule: the same bits");
    CHECK(memcmp(pa, pc, sizeof pa) != 0, "power_t 0.5 trains differently from 0.25");
    nnk_train_config_free(c1);
    nnk_train_config_free(c2);
}

/* CSR input: the same rows as dense input train to the same bits, on the
 * sparse path and on the dense one; bad matrices are refused. */
static void csr_input(void) {
    static float xz[N * D];
    static int64_t indptr[N + 1];
    static int32_t indices[N * D];
    static float data[N * D];
    size_t nnz = 0;
    for (int i = 0; i < N; i++) {
        indptr[i] = (int64_t)nnz;
        for (int j = 0; j < D; j++) {
            float v = X[i * D + j] > 0.0f ? X[i * D + j] : 0.0f; /* about half zero */
            xz[i * D + j] = v;
            if (v != 0.0f || j == 1) { /* an explicit zero now and then: ignored */
                indices[nnz] = j;
                data[nnz++] = v;
            }
        }
    }
    indptr[N] = (int64_t)nnz;
    nnk_csr csr = {N, D, nnz, indptr, indices, data};
    for (uint32_t mode = NNK_SPARSE_AUTO; mode <= NNK_SPARSE_SPARSE; mode++) {
        nnk_train_config *c = NULL;
        CHECK(nnk_train_config_new(&c) == NNK_OK, "config");
        CHECK(nnk_train_config_set_epochs(c, 3) == NNK_OK && nnk_train_config_set_batch_size(c, 8) == NNK_OK, "cfg");
        CHECK(nnk_train_config_set_sparse_input(c, mode) == NNK_OK, "sparse mode");
        CHECK(nnk_train_config_set_early_stopping(c, 1, 0.2, 5, 1e-4) == NNK_OK, "early stopping: a held-out split");
        nnk_mlp *a = new_model(), *b = new_model();
        CHECK(nnk_mlp_fit_classifier(a, c, xz, N, D, Y) == NNK_OK, "dense fit");
        CHECK(nnk_mlp_fit_classifier_csr(b, c, &csr, Y) == NNK_OK, "CSR fit, mode %u", mode);
        float pa[N * K], pb[N * K];
        CHECK(nnk_mlp_predict_proba(a, xz, N, D, pa, N * K) == NNK_OK, "predict a");
        CHECK(nnk_mlp_predict_proba(b, xz, N, D, pb, N * K) == NNK_OK, "predict b");
        CHECK(memcmp(pa, pb, sizeof pa) == 0, "CSR and dense train to the same bits, mode %u", mode);
        CHECK(nnk_mlp_partial_fit_classifier_csr(b, c, &csr, Y) == NNK_OK, "CSR partial fit");
        nnk_mlp_free(a);
        nnk_mlp_free(b);
        nnk_train_config_free(c);
    }
    nnk_train_config *c = NULL;
    CHECK(nnk_train_config_new(&c) == NNK_OK, "config");
    CHECK(nnk_train_config_set_epochs(c, 2) == NNK_OK, "epochs");
    size_t units[2] = {H, 1};
    uint32_t acts[2] = {NNK_ACT_RELU, NNK_ACT_IDENTITY};
    nnk_mlp *r = NULL;
    CHECK(nnk_mlp_new(D, 2, units, acts, 1, &r) == NNK_OK, "regressor");
    float t[N];
    for (int i = 0; i < N; i++) t[i] = xz[i * D] - xz[i * D + 3];
    CHECK(nnk_mlp_fit_regressor_csr(r, c, &csr, t, 1) == NNK_OK, "CSR regressor");
    CHECK(nnk_mlp_partial_fit_regressor_csr(r, c, &csr, t, 1) == NNK_OK, "CSR regressor partial fit");
    CHECK(nnk_mlp_fit_regressor_csr(r, c, &csr, t, 2) == NNK_ERR_SHAPE, "CSR regressor: 2 targets");

    nnk_mlp *m = new_model();
    float before[N * K], after[N * K];
    CHECK(nnk_mlp_predict_proba(m, xz, N, D, before, N * K) == NNK_OK, "predict before");
    nnk_csr bad = csr;
    bad.n_cols = D + 1;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_SHAPE, "CSR: wrong width");
    bad = csr;
    bad.indptr = NULL;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_NULL_POINTER, "CSR: NULL indptr");
    bad = csr;
    bad.nnz = nnz - 1;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_SHAPE, "CSR: nnz disagrees with indptr");
    int64_t p2[N + 1];
    memcpy(p2, indptr, sizeof p2);
    p2[3] = p2[4] + 1;
    bad = csr;
    bad.indptr = p2;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_INVALID_ARG, "CSR: decreasing indptr");
    p2[3] = -1;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_INVALID_ARG, "CSR: negative offset");
    memcpy(p2, indptr, sizeof p2);
    p2[1] = (int64_t)nnz + 1; /* past nnz, then back down: refused, not a panic */
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_INVALID_ARG, "CSR: offset past nnz");
    static int32_t i2[N * D];
    memcpy(i2, indices, nnz * sizeof(int32_t));
    i2[0] = D;
    bad = csr;
    bad.indices = i2;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_INVALID_ARG, "CSR: column out of range");
    memcpy(i2, indices, nnz * sizeof(int32_t));
    int row = 0;
    while (indptr[row + 1] - indptr[row] < 2) row++;
    i2[indptr[row]] = indices[indptr[row] + 1];
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_INVALID_ARG, "CSR: repeated column");
    static float d2[N * D];
    memcpy(d2, data, nnz * sizeof(float));
    d2[nnz / 2] = NAN;
    bad = csr;
    bad.data = d2;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_NON_FINITE, "CSR: NaN value");
    bad = csr;
    bad.n_rows = SIZE_MAX;
    CHECK(nnk_mlp_fit_classifier_csr(m, c, &bad, Y) == NNK_ERR_OVERFLOW, "CSR: n_rows + 1 overflows");
    CHECK(nnk_mlp_fit_classifier_csr(m, c, NULL, Y) == NNK_ERR_NULL_POINTER, "CSR: NULL matrix");
    CHECK(nnk_mlp_fit_classifier_csr(NULL, c, &csr, Y) == NNK_ERR_NULL_POINTER, "CSR: NULL model");
    CHECK(nnk_mlp_predict_proba(m, xz, N, D, after, N * K) == NNK_OK, "predict after");
    CHECK(memcmp(before, after, sizeof before) == 0, "refused CSR fits change nothing");
    nnk_mlp_free(m);
    nnk_mlp_free(r);
    nnk_train_config_free(c);
}

int main(void) {
    make_data();
    layers_and_params();
    bytes_round_trip();
    history_and_partial_fit();
    setters();
    csr_input();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("model_data: all checks passed\n");
    return 0;
}
