/* The trainer from C: trains on the bundled digits, predicts, saves/loads, and
 * exercises the bad-input table. Built by tests/c_api.rs (-std=c99 -Wall -Werror),
 * run with the path of data/digits.csv and a scratch directory. */
#include "nnkern.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { N_FEAT = 64, N_CLASS = 10, MAX_ROWS = 2000 };

static int load_digits(const char *path, float *x, uint32_t *y) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    if (!fgets(line, sizeof line, f)) { fclose(f); return -1; } /* header */
    while (n < MAX_ROWS && fgets(line, sizeof line, f)) {
        char *p = line;
        for (int j = 0; j <= N_FEAT; j++) {
            long v = strtol(p, &p, 10);
            if (*p == ',') p++;
            if (j < N_FEAT) x[n * N_FEAT + j] = (float)v / 16.0f; else y[n] = (uint32_t)v;
        }
        n++;
    }
    fclose(f);
    return n;
}

static int epochs_seen = 0;
static int bad_score = 0;
static int32_t on_epoch(const nnk_epoch_info *info, void *user) {
    epochs_seen = (int)info->epoch;
    if (!(info->score >= 0.0 && info->score <= 1.0)) bad_score = 1; /* training accuracy of a classifier */
    return info->epoch >= *(size_t *)user; /* nonzero stops */
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: train_smoke digits.csv scratch_dir\n"); return 2; }
    static float x[MAX_ROWS * N_FEAT];
    static uint32_t y[MAX_ROWS];
    int n = load_digits(argv[1], x, y);
    CHECK(n == 1797, "read %d rows", n);
    int ntr = 1400, nte = n - ntr;

    size_t units[2] = {64, N_CLASS};
    uint32_t acts[2] = {NNK_ACT_RELU, NNK_ACT_SOFTMAX};
    nnk_mlp *m = NULL;
    CHECK(nnk_mlp_new(N_FEAT, 2, units, acts, 0, &m) == NNK_OK && m, "mlp_new");
    nnk_train_config *c = NULL;
    CHECK(nnk_train_config_new(&c) == NNK_OK && c, "config_new");
    CHECK(nnk_train_config_set_epochs(c, 40) == NNK_OK, "epochs");
    CHECK(nnk_train_config_set_batch_size(c, 32) == NNK_OK, "batch");
    CHECK(nnk_train_config_set_learning_rate(c, 2e-3) == NNK_OK, "lr");
    CHECK(nnk_train_config_set_alpha(c, 1e-4) == NNK_OK, "alpha");
    CHECK(nnk_train_config_set_solver(c, NNK_SOLVER_ADAM) == NNK_OK, "solver");
    CHECK(nnk_train_config_set_sparse_input(c, NNK_SPARSE_SPARSE) == NNK_OK, "sparse input");
    CHECK(nnk_train_config_set_flush_denormals(c, 1) == NNK_OK, "flush denormals");
    CHECK(nnk_train_config_set_seed(c, 0) == NNK_OK, "seed");
    CHECK(nnk_mlp_fit_classifier(m, c, x, (size_t)ntr, N_FEAT, y) == NNK_OK, "fit");
    uint32_t *pred = malloc(sizeof(uint32_t) * (size_t)nte);
    CHECK(nnk_mlp_predict_class(m, x + ntr * N_FEAT, (size_t)nte, N_FEAT, pred, (size_t)nte) == NNK_OK, "predict");
    int ok = 0;
    for (int i = 0; i < nte; i++) ok += pred[i] == y[ntr + i];
    double acc = (double)ok / nte;
    printf("C trainer: digits test accuracy %.4f\n", acc);
    CHECK(acc >= 0.90, "accuracy %.4f (unshuffled split: the last rows are harder)", acc);
    float *proba = malloc(sizeof(float) * (size_t)nte * N_CLASS);
    CHECK(nnk_mlp_predict_proba(m, x + ntr * N_FEAT, (size_t)nte, N_FEAT, proba, (size_t)nte * N_CLASS) == NNK_OK, "proba");
    float s = 0;
    for (int j = 0; j < N_CLASS; j++) s += proba[j];
    CHECK(fabsf(s - 1.0f) < 1e-5f, "probabilities sum to %g", s);

    /* Save, load, identical predictions. */
    char path[1024];
    snprintf(path, sizeof path, "%s/c_model.nnk", argv[2]);
    CHECK(nnk_mlp_save(m, path) == NNK_OK, "save");
    nnk_mlp *l = NULL;
    CHECK(nnk_mlp_load(path, &l) == NNK_OK && l, "load");
    float *proba2 = malloc(sizeof(float) * (size_t)nte * N_CLASS);
    CHECK(nnk_mlp_predict_proba(l, x + ntr * N_FEAT, (size_t)nte, N_FEAT, proba2, (size_t)nte * N_CLASS) == NNK_OK, "proba2");
    CHECK(memcmp(proba, proba2, sizeof(float) * (size_t)nte * N_CLASS) == 0, "save/load changed predictions");
    CHECK(nnk_mlp_n_inputs(l) == N_FEAT && nnk_mlp_n_outputs(l) == N_CLASS && nnk_mlp_n_inputs(NULL) == 0, "getters");

    /* Callback stops after 3 epochs. */
    size_t stop_at = 3;
    CHECK(nnk_train_config_set_callback(c, on_epoch, &stop_at) == NNK_OK, "callback");
    CHECK(nnk_mlp_fit_classifier(l, c, x, (size_t)ntr, N_FEAT, y) == NNK_OK && epochs_seen == 3, "callback stop: %d", epochs_seen);
    CHECK(!bad_score, "the epoch record's training accuracy is in [0, 1]");
    CHECK(nnk_train_config_set_callback(c, NULL, NULL) == NNK_OK, "callback off");

    /* The bad-input table: each refused with its code; the model keeps working. */
    uint32_t badlab[4] = {0, 1, 10, 2};
    float nanx[4 * N_FEAT];
    memcpy(nanx, x, sizeof nanx);
    nanx[7] = NAN;
    float infx[4 * N_FEAT];
    memcpy(infx, x, sizeof infx);
    infx[4 * N_FEAT - 1] = -INFINITY;
    nnk_mlp *tmp = NULL;
    size_t zero_units[2] = {0, 10};
    uint32_t bad_act[2] = {NNK_ACT_RELU, 99};
    uint32_t hidden_softmax[2] = {NNK_ACT_SOFTMAX, NNK_ACT_SOFTMAX};
    struct { int got, want; const char *what; } t[] = {
        {nnk_mlp_new(N_FEAT, 2, NULL, acts, 0, &tmp), NNK_ERR_NULL_POINTER, "null units"},
        {nnk_mlp_new(N_FEAT, 2, units, acts, 0, NULL), NNK_ERR_NULL_POINTER, "null out"},
        {nnk_mlp_new(N_FEAT, 2, zero_units, acts, 0, &tmp), NNK_ERR_INVALID_ARG, "zero units"},
        {nnk_mlp_new(0, 2, units, acts, 0, &tmp), NNK_ERR_INVALID_ARG, "zero inputs"},
        {nnk_mlp_new(N_FEAT, 0, units, acts, 0, &tmp), NNK_ERR_INVALID_ARG, "zero layers"},
        {nnk_mlp_new(N_FEAT, 2, units, bad_act, 0, &tmp), NNK_ERR_INVALID_ARG, "unknown activation"},
        {nnk_mlp_new(N_FEAT, 2, units, hidden_softmax, 0, &tmp), NNK_ERR_INVALID_ARG, "softmax hidden layer"},
        {nnk_mlp_new(N_FEAT, SIZE_MAX, units, acts, 0, &tmp), NNK_ERR_INVALID_ARG, "huge layer count"},
        {nnk_train_config_set_solver(c, 7), NNK_ERR_INVALID_ARG, "unknown solver"},
        {nnk_train_config_set_sparse_input(c, 3), NNK_ERR_INVALID_ARG, "unknown sparse-input mode"},
        {nnk_train_config_set_sparse_input(NULL, 0), NNK_ERR_NULL_POINTER, "null config (sparse input)"},
        {nnk_train_config_set_flush_denormals(c, 2), NNK_ERR_INVALID_ARG, "flush_denormals not 0 or 1"},
        {nnk_train_config_set_flush_denormals(NULL, 1), NNK_ERR_NULL_POINTER, "null config (flush)"},
        {nnk_train_config_set_learning_rate(c, -1), NNK_ERR_INVALID_ARG, "negative lr"},
        {nnk_train_config_set_learning_rate(c, NAN), NNK_ERR_INVALID_ARG, "NaN lr"},
        {nnk_train_config_set_epochs(NULL, 3), NNK_ERR_NULL_POINTER, "null config"},
        {nnk_mlp_fit_classifier(m, c, x, 4, N_FEAT, badlab), NNK_ERR_INVALID_ARG, "label >= classes"},
        {nnk_mlp_fit_classifier(m, c, nanx, 4, N_FEAT, y), NNK_ERR_NON_FINITE, "NaN in data"},
        {nnk_mlp_fit_classifier(m, c, infx, 4, N_FEAT, y), NNK_ERR_NON_FINITE, "-Inf in data"},
        {nnk_mlp_predict_class(m, infx, 4, N_FEAT, pred, 4), NNK_ERR_NON_FINITE, "-Inf in predict data"},
        {nnk_mlp_fit_classifier(m, c, x, 4, N_FEAT + 1, y), NNK_ERR_SHAPE, "wrong n_features"},
        {nnk_mlp_fit_classifier(m, c, NULL, 4, N_FEAT, y), NNK_ERR_NULL_POINTER, "null x"},
        {nnk_mlp_fit_classifier(m, c, x, SIZE_MAX / 2, N_FEAT, y), NNK_ERR_OVERFLOW, "overflowing size"},
        {nnk_mlp_fit_classifier(m, c, x, 0, N_FEAT, y), NNK_ERR_INVALID_ARG, "zero samples"},
        {nnk_mlp_fit_classifier(NULL, c, x, 4, N_FEAT, y), NNK_ERR_NULL_POINTER, "null model"},
        {nnk_mlp_predict_class(m, x, 4, N_FEAT, pred, 3), NNK_ERR_SHAPE, "short output"},
        {nnk_mlp_predict_proba(m, x, 4, 3, proba, 40), NNK_ERR_SHAPE, "wrong n_features predict"},
        {nnk_mlp_save(m, NULL), NNK_ERR_NULL_POINTER, "null path"},
        {nnk_mlp_load(argv[2], &tmp), NNK_ERR_IO, "directory as a model"},
        {nnk_mlp_load("/nonexistent/model.nnk", &tmp), NNK_ERR_IO, "missing file"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) CHECK(t[i].got == t[i].want, "%s: got %d want %d", t[i].what, t[i].got, t[i].want);
    CHECK(tmp == NULL, "an output handle was written on failure");
    /* Garbage, truncated and empty model files. */
    const char *bodies[3] = {"garbage garbage garbage", "NNKMLP", ""};
    for (int i = 0; i < 3; i++) {
        char bad[1024];
        snprintf(bad, sizeof bad, "%s/bad%d.nnk", argv[2], i);
        FILE *f = fopen(bad, "wb");
        fwrite(bodies[i], 1, strlen(bodies[i]), f);
        fclose(f);
        CHECK(nnk_mlp_load(bad, &tmp) == NNK_ERR_FORMAT && tmp == NULL, "bad file %d", i);
    }
    /* Still works after all that. */
    CHECK(nnk_mlp_predict_class(m, x + ntr * N_FEAT, (size_t)nte, N_FEAT, pred, (size_t)nte) == NNK_OK, "predict after errors");

    nnk_mlp_free(m);
    nnk_mlp_free(l);
    nnk_mlp_free(NULL);
    nnk_train_config_free(c);
    nnk_train_config_free(NULL);
    free(pred);
    free(proba);
    free(proba2);
    if (failures) { fprintf(stderr, "%d failure(s)\n", failures); return 1; }
    printf("train_smoke: all checks passed\n");
    return 0;
}
