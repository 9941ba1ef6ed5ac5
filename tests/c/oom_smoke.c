/* Running out of memory is an error, never an abort (issue: "Running out of
 * memory is an error, never an abort"). The program limits its own address
 * space (the soft RLIMIT_AS) to what it uses now plus 48 MiB, then asks for a
 * fit that needs far more: the call must return NNK_ERR_OUT_OF_MEMORY with a
 * message naming the size, leave the model bit for bit as it was, and a
 * smaller predict must still work. Run plain and under valgrind
 * (tests/c_api.rs). Prints "all checks passed" on success. */
#define _GNU_SOURCE
#include "check.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define N 64
#define IN 784
#define HIDDEN 8192

/* The process's address-space size in bytes (VmSize), 0 if unknown. */
static unsigned long long vm_size(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024ull;
}

int main(void) {
    size_t units[2] = {HIDDEN, 10};
    uint32_t acts[2] = {NNK_ACT_RELU, NNK_ACT_SOFTMAX};
    nnk_mlp *m = NULL;
    nnk_train_config *c = NULL;
    static float x[N * IN], before[N * 10], after[N * 10];
    static uint32_t y[N];
    for (int i = 0; i < N * IN; i++) x[i] = (float)((i * 7919) % 13) / 13.0f;
    for (int i = 0; i < N; i++) y[i] = (uint32_t)(i % 10);

    /* 6.5 M parameters (26 MB); Adam's fit needs six more buffers that size. */
    CHECK(nnk_mlp_new(IN, 2, units, acts, 1, &m) == NNK_OK, "nnk_mlp_new");
    CHECK(nnk_train_config_new(&c) == NNK_OK, "nnk_train_config_new");
    CHECK(nnk_train_config_set_epochs(c, 2) == NNK_OK, "epochs");
    CHECK(nnk_train_config_set_batch_size(c, 32) == NNK_OK, "batch size");
    if (failures) return 1;
    CHECK(nnk_mlp_predict_proba(m, x, N, IN, before, N * 10) == NNK_OK, "predict before");

    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
    unsigned long long vm = vm_size();
    CHECK(vm > 0, "VmSize");
    lim = old;
    lim.rlim_cur = (rlim_t)(vm + (48ull << 20));
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit");

    int32_t st = nnk_mlp_fit_classifier(m, c, x, N, IN, y);
    CHECK(st == NNK_ERR_OUT_OF_MEMORY, "fit returned %d, expected NNK_ERR_OUT_OF_MEMORY", (int)st);
    const char *msg = nnk_last_error_message();
    CHECK(strstr(msg, "bytes") != NULL && strstr(msg, "out of memory") != NULL, "message: %s", msg);
    printf("fit under the limit: %s\n", msg);
    CHECK(strcmp(nnk_status_str(NNK_ERR_OUT_OF_MEMORY), "out of memory") == 0 ||
              strstr(nnk_status_str(NNK_ERR_OUT_OF_MEMORY), "memory") != NULL,
          "status text: %s", nnk_status_str(NNK_ERR_OUT_OF_MEMORY));

    /* The model is untouched and still predicts (a smaller call). */
    CHECK(nnk_mlp_predict_proba(m, x, N, IN, after, N * 10) == NNK_OK, "predict after");
    CHECK(memcmp(before, after, sizeof before) == 0, "the model's predictions changed");

    CHECK(setrlimit(RLIMIT_AS, &old) == 0, "restore the limit");
    nnk_train_config_free(c);
    nnk_mlp_free(m);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
