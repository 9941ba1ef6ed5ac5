/* The kernel entry points from C: vector math, activations, fused dense steps,
 * softmax cross-entropy and optimizer steps, with their refusals. Built by
 * tests/c_api.rs with -std=c99 -Wall -Werror. */
#include "nnkern.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static int untouched(const float *a, const float *b, const float *c, float s) {
    for (int i = 0; i < 16; i++)
        if (a[i] != s || b[i] != s || c[i] != s) return 0;
    return 1;
}

int main(void) {
    float x[37], y[37];
    for (int i = 0; i < 37; i++) x[i] = (float)i / 8.0f - 2.0f;
    CHECK(nnk_vexp_f32(x, y, 37) == NNK_OK, "vexp");
    for (int i = 0; i < 37; i++) CHECK(fabsf(y[i] - expf(x[i])) <= 1e-6f * expf(x[i]), "exp(%g)", x[i]);
    CHECK(nnk_vtanh_f32(x, y, 37) == NNK_OK && fabsf(y[3] - tanhf(x[3])) < 1e-6f, "vtanh");
    CHECK(nnk_vsigmoid_f32(x, y, 37) == NNK_OK && fabsf(y[5] - 1.0f / (1.0f + expf(-x[5]))) < 1e-6f, "vsigmoid");
    CHECK(nnk_vlog_f32(y, y, 37) == NNK_OK, "vlog in place");
    CHECK(nnk_vexp_f32(NULL, y, 0) == NNK_OK, "empty with NULL");
    CHECK(nnk_vexp_f32(NULL, y, 3) == NNK_ERR_NULL_POINTER, "NULL x");
    CHECK(nnk_vexp_f32(x, x + 1, 5) == NNK_ERR_INVALID_ARG, "partial overlap");

    /* Activation forward/backward over rows. */
    float p[6];
    CHECK(nnk_activation_forward(NNK_ACT_SOFTMAX, 2, 3, x, p) == NNK_OK, "softmax");
    CHECK(fabsf(p[0] + p[1] + p[2] - 1.0f) < 1e-6f, "softmax row sums to 1");
    float dy[6] = {1, 0, 0, 0, 1, 0}, dx[6];
    CHECK(nnk_activation_backward(NNK_ACT_RELU, 2, 3, x, NULL, dy, dx) == NNK_OK, "relu backward needs only x");
    CHECK(nnk_activation_backward(NNK_ACT_TANH, 2, 3, NULL, p, dy, dx) == NNK_OK, "tanh backward needs only y");
    CHECK(nnk_activation_backward(NNK_ACT_RELU, 2, 3, NULL, p, dy, dx) == NNK_ERR_NULL_POINTER, "relu without x");
    CHECK(nnk_activation_forward(42, 2, 3, x, p) == NNK_ERR_INVALID_ARG, "unknown activation");
    CHECK(nnk_activation_forward(NNK_ACT_RELU, SIZE_MAX, 3, x, p) == NNK_ERR_OVERFLOW, "overflow");

    /* Dense forward/backward: 4 samples, 3 inputs, 2 outputs. */
    float X[12], W[6] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}, B[2] = {0.1f, -0.1f}, Z[8], A[8];
    for (int i = 0; i < 12; i++) X[i] = (float)(i % 5) - 2.0f;
    CHECK(nnk_dense_forward(NNK_ACT_RELU, 4, 3, 2, X, W, B, Z, A) == NNK_OK, "dense forward");
    for (int i = 0; i < 8; i++) CHECK(A[i] == (Z[i] > 0 ? Z[i] : 0), "a = relu(z) at %d", i);
    float z00 = X[0] * W[0] + X[1] * W[2] + X[2] * W[4] + B[0];
    CHECK(fabsf(Z[0] - z00) < 1e-6f, "z[0] %g vs %g", Z[0], z00);
    float dA[8] = {1, 1, 1, 1, 1, 1, 1, 1}, dW[6], dB[2], dX[12];
    CHECK(nnk_dense_backward(NNK_ACT_RELU, 4, 3, 2, X, W, Z, NULL, dA, 0.01f, dW, dB, dX) == NNK_OK, "dense backward");
    CHECK(nnk_dense_backward(NNK_ACT_RELU, 4, 3, 2, X, W, Z, NULL, dA, 0.01f, dW, dB, NULL) == NNK_OK, "dx optional");
    CHECK(nnk_dense_backward(NNK_ACT_RELU, 4, 3, 2, X, W, Z, NULL, dA, 0.01f, dW, dB, dW) == NNK_ERR_INVALID_ARG, "aliasing outputs");
    CHECK(nnk_dense_forward(NNK_ACT_RELU, 4, 3, 2, X, NULL, B, Z, A) == NNK_ERR_NULL_POINTER, "NULL w");

    /* Softmax cross-entropy; a label >= classes is refused and outputs untouched. */
    float logits[6] = {1, 2, 3, 1, 1, 1}, dl[6], loss = -1;
    uint32_t lab[2] = {2, 0}, bad[2] = {2, 3};
    CHECK(nnk_softmax_cross_entropy(2, 3, logits, lab, &loss, dl) == NNK_OK && loss > 0, "softmax xent");
    float before = dl[0], loss_before = loss;
    CHECK(nnk_softmax_cross_entropy(2, 3, logits, bad, &loss, dl) == NNK_ERR_INVALID_ARG, "label >= classes");
    CHECK(dl[0] == before && loss == loss_before, "outputs untouched on error");

    /* Optimizers. */
    float w[5] = {1, 2, 3, 4, 5}, g[5] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f}, m[5] = {0}, v[5] = {0};
    CHECK(nnk_adam_step(5, w, g, m, v, 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f) == NNK_OK, "adam");
    CHECK(fabsf(w[0] - (1.0f - 1e-3f)) < 1e-5f, "adam first step moves by lr: %g", w[0]);
    CHECK(nnk_adam_step(5, w, g, m, v, 0, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f) == NNK_ERR_INVALID_ARG, "adam t = 0");
    float vel[5] = {0};
    CHECK(nnk_sgd_step(5, w, g, vel, 0.1f, 0.9f, 1, 0.0f) == NNK_OK, "sgd nesterov");
    CHECK(nnk_sgd_step(5, w, g, vel, 0.1f, 0.9f, 2, 0.0f) == NNK_ERR_INVALID_ARG, "nesterov must be 0/1");
    CHECK(nnk_sgd_step(5, w, g, NULL, 0.1f, 0.9f, 0, 0.0f) == NNK_ERR_NULL_POINTER, "momentum needs velocity");
    CHECK(nnk_sgd_step(5, w, g, NULL, 0.1f, 0.0f, 0, 0.0f) == NNK_OK, "plain sgd without velocity");

    /* Every refusal: the documented code, a message naming the problem, and
     * outputs untouched (filled with a sentinel beforehand). */
    {
        float out[16], out2[16], out3[16];
        float S = 7.25f;
#define FILL() for (int i = 0; i < 16; i++) out[i] = out2[i] = out3[i] = S
#define UNTOUCHED() untouched(out, out2, out3, S)
#define MSG(sub) (strstr(nnk_last_error_message(), sub) != NULL)
        FILL();
        CHECK(nnk_vexp_f32(NULL, out, 3) == NNK_ERR_NULL_POINTER && MSG("NULL") && UNTOUCHED(), "vexp NULL x");
        CHECK(nnk_vtanh_f32(x, out, SIZE_MAX) != NNK_OK && UNTOUCHED(), "vtanh absurd n");
        CHECK(nnk_activation_forward(42, 2, 3, x, out) == NNK_ERR_INVALID_ARG && MSG("activation code 42") && UNTOUCHED(),
              "unknown activation");
        CHECK(nnk_activation_forward(NNK_ACT_RELU, SIZE_MAX, 3, x, out) == NNK_ERR_OVERFLOW && MSG("overflow") &&
                  UNTOUCHED(),
              "rows × cols overflow");
        CHECK(nnk_activation_backward(NNK_ACT_RELU, 2, 3, NULL, p, dy, out) == NNK_ERR_NULL_POINTER && MSG("NULL") &&
                  UNTOUCHED(),
              "relu backward without x");
        CHECK(nnk_activation_backward(9999, 2, 3, x, p, dy, out) == NNK_ERR_INVALID_ARG && UNTOUCHED(), "backward code");
        CHECK(nnk_dense_forward(NNK_ACT_RELU, 4, 3, 2, X, NULL, B, out, out2) == NNK_ERR_NULL_POINTER && MSG("'w' is NULL") &&
                  UNTOUCHED(),
              "dense forward NULL w");
        CHECK(nnk_dense_forward(NNK_ACT_SOFTMAX + 100, 4, 3, 2, X, W, B, out, out2) == NNK_ERR_INVALID_ARG && UNTOUCHED(),
              "dense forward code");
        CHECK(nnk_dense_forward(NNK_ACT_RELU, SIZE_MAX / 2, 3, 2, X, W, B, out, out2) == NNK_ERR_OVERFLOW && UNTOUCHED(),
              "dense forward overflow");
        CHECK(nnk_dense_backward(NNK_ACT_RELU, 4, 3, 2, X, W, Z, NULL, NULL, 0.0f, out, out2, out3) ==
                      NNK_ERR_NULL_POINTER &&
                  MSG("'da' is NULL") && UNTOUCHED(),
              "dense backward NULL da");
        CHECK(nnk_dense_backward(NNK_ACT_RELU, 4, 3, 2, X, W, Z, NULL, dA, 0.0f, out, out, NULL) == NNK_ERR_INVALID_ARG &&
                  UNTOUCHED(),
              "dense backward dw aliasing db");
        float lossv = S;
        CHECK(nnk_softmax_cross_entropy(2, 3, logits, bad, &lossv, out) == NNK_ERR_INVALID_ARG && MSG("label 3") &&
                  UNTOUCHED() && lossv == S,
              "label 3 >= 3 classes");
        CHECK(nnk_softmax_cross_entropy(2, 3, logits, lab, NULL, out) == NNK_ERR_NULL_POINTER && MSG("'loss' is NULL") &&
                  UNTOUCHED(),
              "NULL loss");
        CHECK(nnk_softmax_cross_entropy(2, 0, logits, lab, &lossv, out) != NNK_OK && UNTOUCHED() && lossv == S,
              "zero classes with labels");
        FILL();
        float gg[16] = {0}, mm[16] = {0};
        CHECK(nnk_adam_step(16, out, gg, mm, out2, 0, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f) == NNK_ERR_INVALID_ARG &&
                  MSG("t starts at 1") && UNTOUCHED(),
              "adam t = 0");
        CHECK(nnk_adam_step(16, out, gg, mm, out2, 1, 1e-3f, 1.5f, 0.999f, 1e-8f, 0.0f) == NNK_ERR_INVALID_ARG &&
                  UNTOUCHED(),
              "adam beta1 > 1");
        CHECK(nnk_adam_step(16, out, gg, NULL, out2, 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f) == NNK_ERR_NULL_POINTER &&
                  UNTOUCHED(),
              "adam NULL m");
        CHECK(nnk_sgd_step(16, out, gg, out2, 0.1f, 0.9f, 2, 0.0f) == NNK_ERR_INVALID_ARG && MSG("nesterov") &&
                  UNTOUCHED(),
              "nesterov 2");
        CHECK(nnk_sgd_step(16, out, gg, out2, NAN, 0.9f, 0, 0.0f) != NNK_OK && UNTOUCHED(), "NaN learning rate");
        CHECK(nnk_sgd_step(16, out, NULL, out2, 0.1f, 0.9f, 0, 0.0f) == NNK_ERR_NULL_POINTER && UNTOUCHED(), "NULL g");
#undef FILL
#undef UNTOUCHED
#undef MSG
    }

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ops_smoke: all checks passed\n");
    return 0;
}
