/* Data-parallel training through the C ABI, run by tests/mpi.rs under
 * `mpirun -np 2`: every rank fits the same model on the whole synthetic data
 * set over MPI_COMM_WORLD's Fortran handle and prints a checksum of its
 * predictions (the same on every rank), then checks the refusals. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nnkern.h"

static int failures = 0;
#define EXPECT(cond, what)                                              \
    do {                                                                \
        if (!(cond)) {                                                  \
            printf("rank %d: FAIL %s (%s)\n", rank, what, nnk_last_error_message()); \
            failures++;                                                 \
        }                                                               \
    } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* 600 samples of 8 features in 3 classes, the same on every rank. */
    enum { N = 600, D = 8, K = 3 };
    static float x[N * D];
    static uint32_t y[N];
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        y[i] = (uint32_t)(i % K);
        for (int j = 0; j < D; j++) {
            s = s * 1664525u + 1013904223u;
            float noise = (float)(s >> 8) / 16777216.0f - 0.5f;
            x[i * D + j] = noise + (j % K == (int)y[i] ? 1.0f : 0.0f);
        }
    }
    size_t units[2] = {16, K};
    uint32_t acts[2] = {NNK_ACT_RELU, NNK_ACT_SOFTMAX};

    nnk_mlp *m = NULL;
    nnk_train_config *c = NULL;
    EXPECT(nnk_mlp_new(D, 2, units, acts, 1, &m) == NNK_OK, "nnk_mlp_new");
    EXPECT(nnk_train_config_new(&c) == NNK_OK, "nnk_train_config_new");
    EXPECT(nnk_train_config_set_epochs(c, 30) == NNK_OK, "epochs");
    EXPECT(nnk_train_config_set_batch_size(c, 64) == NNK_OK, "batch");
    EXPECT(nnk_train_config_set_mpi_comm(c, (int64_t)MPI_Comm_c2f(MPI_COMM_WORLD)) == NNK_OK, "set_mpi_comm");
    EXPECT(nnk_train_config_set_data_shard(c, NNK_SHARD_WHOLE) == NNK_OK, "set_data_shard");
    EXPECT(nnk_train_config_set_data_shard(c, 7) == NNK_ERR_INVALID_ARG, "unknown shard code");
    EXPECT(nnk_mlp_fit_classifier(m, c, x, N, D, y) == NNK_OK, "distributed fit");

    /* The predictions' bits, FNV-1a: the same on every rank. */
    static float p[N * K];
    EXPECT(nnk_mlp_predict_proba(m, x, N, D, p, N * K) == NNK_OK, "predict");
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof p; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    uint32_t cls[N];
    EXPECT(nnk_mlp_predict_class(m, x, N, D, cls, N) == NNK_OK, "predict_class");
    int right = 0;
    for (int i = 0; i < N; i++) right += cls[i] == y[i];
    printf("rank %d: fit %016llx accuracy %.3f\n", rank, (unsigned long long)h, (double)right / N);

    /* MPI_COMM_WORLD by flag gives the same bits. */
    nnk_mlp *m2 = NULL;
    nnk_train_config *c2 = NULL;
    EXPECT(nnk_mlp_new(D, 2, units, acts, 1, &m2) == NNK_OK, "nnk_mlp_new 2");
    EXPECT(nnk_train_config_new(&c2) == NNK_OK, "config 2");
    EXPECT(nnk_train_config_set_epochs(c2, 30) == NNK_OK && nnk_train_config_set_batch_size(c2, 64) == NNK_OK, "c2");
    EXPECT(nnk_train_config_set_distributed(c2, 2) == NNK_ERR_INVALID_ARG, "distributed flag 2");
    EXPECT(nnk_train_config_set_distributed(c2, 1) == NNK_OK, "set_distributed");
    EXPECT(nnk_mlp_fit_classifier(m2, c2, x, N, D, y) == NNK_OK, "fit over the world");
    static float p2[N * K];
    EXPECT(nnk_mlp_predict_proba(m2, x, N, D, p2, N * K) == NNK_OK, "predict 2");
    EXPECT(memcmp(p, p2, sizeof p) == 0, "set_distributed(1) = set_mpi_comm(world)");

    /* A handle no communicator has: the same error on every rank, no hang. */
    EXPECT(nnk_train_config_set_mpi_comm(c2, 987654) == NNK_OK, "set a bad handle");
    int32_t st = nnk_mlp_fit_classifier(m2, c2, x, N, D, y);
    printf("rank %d: bad handle %d %s\n", rank, st, nnk_last_error_message());
    EXPECT(st == NNK_ERR_INVALID_ARG, "a bad handle is refused");
    EXPECT(nnk_train_config_set_mpi_comm(c2, (int64_t)1 << 40) == NNK_ERR_INVALID_ARG, "not a Fortran integer");
    EXPECT(nnk_train_config_set_mpi_comm(NULL, 0) == NNK_ERR_NULL_POINTER, "set_mpi_comm(NULL)");
    EXPECT(nnk_train_config_set_distributed(NULL, 1) == NNK_ERR_NULL_POINTER, "set_distributed(NULL)");
    EXPECT(nnk_train_config_set_data_shard(NULL, 0) == NNK_ERR_NULL_POINTER, "set_data_shard(NULL)");

    nnk_train_config_free(c2);
    nnk_mlp_free(m2);
    nnk_train_config_free(c);
    nnk_mlp_free(m);
    printf("rank %d: %d failures\n", rank, failures);
    MPI_Finalize();
    return failures != 0;
}
