/* Compiled by tests/c_api.rs as C99 and as C++17 (-Wall -Werror) against
 * include/nnkern.h and the static library, then run. Exits non-zero on failure. */
#include "nnkern.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Reference: op(A) m×k, op(B) k×n in the given layout, double accumulation. */
static double at(const float *x, int row_major, size_t ld, size_t i, size_t j) {
    return row_major ? x[i * ld + j] : x[j * ld + i];
}

static void check_sgemm(int layout, int ta, int tb, size_t m, size_t n, size_t k, float alpha, float beta,
                        size_t pad) {
    int rm = layout == NNK_ROW_MAJOR;
    size_t ar = ta != NNK_NO_TRANS ? k : m, ac = ta != NNK_NO_TRANS ? m : k;
    size_t br = tb != NNK_NO_TRANS ? n : k, bc = tb != NNK_NO_TRANS ? k : n;
    size_t lda = (rm ? ac : ar) + pad, ldb = (rm ? bc : br) + pad, ldc = (rm ? n : m) + pad;
    if (lda == 0) lda = 1;
    if (ldb == 0) ldb = 1;
    if (ldc == 0) ldc = 1;
    size_t alen = (rm ? ar : ac) * lda + 1, blen = (rm ? br : bc) * ldb + 1, clen = (rm ? m : n) * ldc + 1;
    float *a = malloc(alen * sizeof(float)), *b = malloc(blen * sizeof(float));
    float *c = malloc(clen * sizeof(float)), *c0 = malloc(clen * sizeof(float));
    for (size_t i = 0; i < alen; i++) a[i] = (float)((int)(i * 7 % 13) - 6) / 4.0f;
    for (size_t i = 0; i < blen; i++) b[i] = (float)((int)(i * 5 % 11) - 5) / 2.0f;
    for (size_t i = 0; i < clen; i++) c[i] = c0[i] = beta == 0.0f ? NAN : (float)(i % 3);
    int st = nnk_sgemm(layout, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    CHECK(st == NNK_OK, "sgemm status %d", st);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t p = 0; p < k; p++) {
                double x = ta != NNK_NO_TRANS ? at(a, rm, lda, p, i) : at(a, rm, lda, i, p);
                double y = tb != NNK_NO_TRANS ? at(b, rm, ldb, j, p) : at(b, rm, ldb, p, j);
                s += x * y;
            }
            size_t idx = rm ? i * ldc + j : j * ldc + i;
            double want = alpha * s + (beta == 0.0f ? 0.0 : beta * c0[idx]);
            CHECK(fabs(c[idx] - want) <= 1e-4 * (1 + fabs(want)), "C(%zu,%zu)=%g want %g (m=%zu n=%zu k=%zu)",
                  i, j, c[idx], want, m, n, k);
        }
    free(a); free(b); free(c); free(c0);
}

int main(void) {
    printf("nnkern %s, ISA %s\n", nnk_version(), nnk_isa_name());
    CHECK(strlen(nnk_last_error_message()) == 0, "fresh thread has an error message");
    int layouts[2] = {NNK_ROW_MAJOR, NNK_COL_MAJOR};
    int trans[3] = {NNK_NO_TRANS, NNK_TRANS, NNK_CONJ_TRANS};
    size_t dims[6] = {0, 1, 3, 17, 33, 70};
    for (int l = 0; l < 2; l++)
        for (int x = 0; x < 3; x++)
            for (int y = 0; y < 3; y++)
                for (int d = 0; d < 6; d++)
                    check_sgemm(layouts[l], trans[x], trans[y], dims[d], dims[(d + 2) % 6], dims[(d + 4) % 6],
                                d % 2 ? 1.0f : -1.5f, d % 3 ? 0.0f : 2.25f, (size_t)(d % 3));

    /* Double precision, one case. */
    double da[6] = {1, 2, 3, 4, 5, 6}, db[6] = {7, 8, 9, 10, 11, 12}, dc[4] = {NAN, NAN, NAN, NAN};
    CHECK(nnk_dgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 3, 1.0, da, 3, db, 2, 0.0, dc, 2) == NNK_OK, "dgemm");
    CHECK(dc[0] == 58 && dc[1] == 64 && dc[2] == 139 && dc[3] == 154, "dgemm values %g %g %g %g", dc[0], dc[1], dc[2], dc[3]);

    /* Bad input: each refused with its code, a message, and C untouched. */
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {9, 9, 9, 9};
    struct { int st; const char *what; } bad[] = {
        {nnk_sgemm(100, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), "layout"},
        {nnk_sgemm(NNK_ROW_MAJOR, 114, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), "trans_a"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), "trans_b"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2), "null a"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, NULL, 2, 0, c, 2), "null b"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, NULL, 2), "null c"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 1, b, 2, 0, c, 2), "lda"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, c, 1), "ldc"},
        {nnk_sgemm(NNK_COL_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 3, 2, 2, 1, a, 2, b, 2, 0, c, 3), "col lda"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, SIZE_MAX / 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), "overflow"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, SIZE_MAX / 2, b, 2, 0, c, 2), "lda overflow"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, (float *)((char *)c + 1), 2), "misaligned"},
        {nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, a, 2), "aliasing"},
    };
    int want[] = {NNK_ERR_INVALID_ARG, NNK_ERR_INVALID_ARG, NNK_ERR_INVALID_ARG, NNK_ERR_NULL_POINTER,
                  NNK_ERR_NULL_POINTER, NNK_ERR_NULL_POINTER, NNK_ERR_INVALID_ARG, NNK_ERR_INVALID_ARG,
                  NNK_ERR_INVALID_ARG, NNK_ERR_OVERFLOW, NNK_ERR_OVERFLOW, NNK_ERR_INVALID_ARG, NNK_ERR_INVALID_ARG};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) CHECK(bad[i].st == want[i], "%s: status %d, want %d", bad[i].what, bad[i].st, want[i]);
    CHECK(c[0] == 9 && c[1] == 9 && c[2] == 9 && c[3] == 9 && a[0] == 1, "C or A touched on error");
    /* A failure leaves a message; the next success clears it. */
    nnk_sgemm(100, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2);
    CHECK(strstr(nnk_last_error_message(), "layout") != NULL, "message names the argument");
    char buf[8];
    size_t full = nnk_last_error(buf, sizeof buf);
    CHECK(full > 7 && strlen(buf) == 7, "copying variant truncates: %zu '%s'", full, buf);
    CHECK(strcmp(nnk_status_str(NNK_ERR_NULL_POINTER), "null pointer") == 0, "status_str");
    CHECK(strcmp(nnk_status_str(12345), "unknown status") == 0, "status_str unknown");
    /* Zero sizes with NULL pointers are fine; k == 0 scales C by beta. */
    CHECK(nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 0, 0, 0, 1, NULL, 1, NULL, 1, 0, NULL, 1) == NNK_OK, "empty");
    CHECK(strlen(nnk_last_error_message()) == 0, "success clears the message");
    CHECK(nnk_sgemm(NNK_ROW_MAJOR, NNK_NO_TRANS, NNK_NO_TRANS, 2, 2, 0, 1, NULL, 1, NULL, 2, 2, c, 2) == NNK_OK, "k=0");
    CHECK(c[0] == 18 && c[3] == 18, "k=0 scales C by beta");
    CHECK(nnk_set_num_threads(1) == NNK_OK && nnk_get_num_threads() == 1, "threads=1");
    CHECK(nnk_set_num_threads(0) == NNK_OK && nnk_get_num_threads() >= 1, "threads=0");
    CHECK(nnk_set_num_threads(100000) == NNK_ERR_INVALID_ARG, "threads too many");
    CHECK(NNK_VERSION_MAJOR == 0, "version macro");

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("gemm_smoke: all checks passed\n");
    return 0;
}
