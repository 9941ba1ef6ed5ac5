/* Trains a 64-64-10 MLP on the UCI digits bundled with nnkern (data/digits.csv)
 * through the C API and prints the test accuracy.
 *
 *   make run                      # builds nnkern and this program, trains, prints
 *   make run PREFIX=/usr/local    # the same against an installed nnkern (pkg-config)
 *
 * Usage: train_digits [digits.csv] [epochs]
 */
#include <nnkern.h>
#include <stdio.h>
#include <stdlib.h>

enum { N_FEAT = 64, N_CLASS = 10, MAX_ROWS = 4096 };

/* Reads "pixel0..pixel63,label" rows after a header line; returns the row count or -1. */
static int read_digits(const char *path, float *x, uint32_t *y) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    if (!fgets(line, sizeof line, f)) { fclose(f); return -1; }
    while (n < MAX_ROWS && fgets(line, sizeof line, f)) {
        char *p = line;
        for (int j = 0; j <= N_FEAT; j++) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) { fclose(f); return -1; }
            p = *end == ',' ? end + 1 : end;
            if (j < N_FEAT) x[n * N_FEAT + j] = (float)v / 16.0f; /* pixels are 0..16 */
            else y[n] = (uint32_t)v;
        }
        n++;
    }
    fclose(f);
    return n;
}

/* Prints one line per epoch; returning nonzero would stop training. */
static int32_t report(const nnk_epoch_info *e, void *user) {
    (void)user;
    printf("epoch %3zu  loss %.4f  %.3f s\n", e->epoch, e->loss, e->seconds);
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, nnk_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../../data/digits.csv";
    size_t epochs = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 30;
    static float x[MAX_ROWS * N_FEAT], xs[MAX_ROWS * N_FEAT];
    static uint32_t y[MAX_ROWS], ys[MAX_ROWS];
    int n = read_digits(path, x, y);
    if (n < 10) { fprintf(stderr, "cannot read %s\n", path); return 1; }

    /* Seeded shuffle (xorshift64 + Fisher-Yates), then 80% train / 20% test. */
    int perm[MAX_ROWS];
    for (int i = 0; i < n; i++) perm[i] = i;
    uint64_t s = 42;
    for (int i = n - 1; i > 0; i--) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int j = (int)(s % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < N_FEAT; j++) xs[i * N_FEAT + j] = x[perm[i] * N_FEAT + j];
        ys[i] = y[perm[i]];
    }
    size_t n_train = (size_t)n * 4 / 5, n_test = (size_t)n - n_train;

    size_t units[2] = {64, N_CLASS};
    uint32_t acts[2] = {NNK_ACT_RELU, NNK_ACT_SOFTMAX};
    nnk_mlp *model = NULL;            /* owned here: nnk_mlp_free */
    nnk_train_config *cfg = NULL;     /* owned here: nnk_train_config_free */
    if (nnk_mlp_new(N_FEAT, 2, units, acts, 0, &model) != NNK_OK) return fail("nnk_mlp_new");
    if (nnk_train_config_new(&cfg) != NNK_OK) return fail("nnk_train_config_new");
    if (nnk_train_config_set_solver(cfg, NNK_SOLVER_ADAM) != NNK_OK ||
        nnk_train_config_set_epochs(cfg, epochs) != NNK_OK ||
        nnk_train_config_set_batch_size(cfg, 32) != NNK_OK ||
        nnk_train_config_set_learning_rate(cfg, 2e-3) != NNK_OK ||
        nnk_train_config_set_alpha(cfg, 1e-4) != NNK_OK ||
        nnk_train_config_set_seed(cfg, 0) != NNK_OK ||
        nnk_train_config_set_callback(cfg, report, NULL) != NNK_OK)
        return fail("configure");
    if (nnk_mlp_fit_classifier(model, cfg, xs, n_train, N_FEAT, ys) != NNK_OK) return fail("fit");

    static uint32_t pred[MAX_ROWS];
    if (nnk_mlp_predict_class(model, xs + n_train * N_FEAT, n_test, N_FEAT, pred, n_test) != NNK_OK)
        return fail("predict");
    size_t ok = 0;
    for (size_t i = 0; i < n_test; i++) ok += pred[i] == ys[n_train + i];
    printf("test accuracy: %.4f\n", (double)ok / (double)n_test);

    nnk_train_config_free(cfg);
    nnk_mlp_free(model);
    return 0;
}
