"""The JAX peer of the MNIST epoch benchmark, for side-by-side timing on the
machine at hand (the anchors in ../shared/ANCHORS.md were measured elsewhere).

Same model and settings as `cargo run --release --example train -- --idx DIR`:
784-128(relu)-10(softmax), Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), L2
`alpha` in scikit-learn's scaling (0.5·alpha·‖W‖²/batch, biases excluded),
pixels scaled to [0, 1], a seeded shuffle per epoch, the data set on the device
once, the whole epoch jitted as one `lax.scan` over the batches' row indices (the fastest JAX form of ANCHORS.md).
A trailing partial batch is dropped (JAX's scan needs equal batches).

    pip install "jax[cpu]"
    # one thread, as the Rust figure with --threads 1:
    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 0 python3 bench/peers/jax_mnist.py DIR [EPOCHS] [BATCH]

Prints the seconds of every epoch (the first includes compilation), the
median of the others, and the test accuracy.
"""
import gzip
import statistics
import struct
import sys
import time

import numpy as np
import jax
import jax.numpy as jnp


def idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(d, name):
    import os
    for suffix in (".gz", ""):
        p = os.path.join(d, name + suffix)
        if os.path.exists(p):
            return idx(p)
    raise FileNotFoundError(name)


def main():
    d = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    alpha, lr, b1, b2, eps = 1e-4, 1e-3, 0.9, 0.999, 1e-8
    xtr = load(d, "train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    ytr = load(d, "train-labels-idx1-ubyte").astype(np.int32)
    xte = load(d, "t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    yte = load(d, "t10k-labels-idx1-ubyte").astype(np.int32)

    key = jax.random.PRNGKey(0)
    k1, k2 = jax.random.split(key)
    # Glorot uniform for the softmax layer, He uniform for the relu layer.
    w1 = jax.random.uniform(k1, (784, 128), jnp.float32, -1, 1) * np.sqrt(6.0 / 784)
    w2 = jax.random.uniform(k2, (128, 10), jnp.float32, -1, 1) * np.sqrt(6.0 / (128 + 10))
    params = (w1, jnp.zeros(128, jnp.float32), w2, jnp.zeros(10, jnp.float32))

    def loss_fn(p, x, y):
        w1, c1, w2, c2 = p
        h = jax.nn.relu(x @ w1 + c1)
        logits = h @ w2 + c2
        ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
        return ce + 0.5 * alpha * (jnp.sum(w1 * w1) + jnp.sum(w2 * w2)) / x.shape[0]

    xall, yall = jnp.asarray(xtr), jnp.asarray(ytr)

    def step(carry, ib):
        p, m, v, t = carry
        x, y = xall[ib], yall[ib]
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = t + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1 = 1 - b1 ** t
        c2 = 1 - b2 ** t
        p = jax.tree.map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), p, m, v)
        return (p, m, v, t), loss

    @jax.jit
    def epoch(carry, perm):
        return jax.lax.scan(step, carry, perm)

    @jax.jit
    def predict(p, x):
        w1, c1, w2, c2 = p
        return jnp.argmax(jax.nn.relu(x @ w1 + c1) @ w2 + c2, axis=1)

    zeros = jax.tree.map(jnp.zeros_like, params)
    carry = (params, zeros, zeros, jnp.float32(0))
    nb = len(xtr) // batch
    rng = np.random.default_rng(0)
    times = []
    for e in range(epochs):
        perm = rng.permutation(len(xtr))[: nb * batch]
        t0 = time.perf_counter()
        carry, losses = epoch(carry, jnp.asarray(perm.reshape(nb, batch)))
        losses.block_until_ready()
        times.append(time.perf_counter() - t0)
        print(f"epoch {e + 1}: {times[-1]:.3f} s, loss {float(jnp.mean(losses)):.4f}")
    acc = float(jnp.mean(predict(carry[0], jnp.asarray(xte)) == yte))
    print(f"median seconds per epoch (after the first): {statistics.median(times[1:]):.3f}")
    print(f"test accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()
