/* The kernel entry points from C: vector math, activations, fused dense steps,
 * softmax cross-entropy and optimizer steps, with their refusals. Built by
 * tests/c_api.rs with -std=c99 -Wall -Werror. */
#include "nnkern.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

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

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ops_smoke: all checks passed\n");
    return 0;
}
