"""The trainer: thin handle classes (`Mlp`, `TrainConfig`) over the C API;
the scikit-learn estimators (``nnkern._estimators``) are built on them."""

from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_double, c_float, c_int32, c_int64, c_size_t, c_uint8, c_uint32

import numpy as np

from ._lib import EPOCH_CALLBACK, check, lib, nnk_csr, nnk_fit_summary, nnk_mlp, nnk_train_config, ptr

__all__ = ["Mlp", "TrainConfig", "NotFittedError", "ACTIVATIONS", "SOLVERS"]

# NNK_ACT_* (hidden layers; softmax/log-softmax are output-only in the trainer).
ACTIVATIONS = {
    "identity": 0, "relu": 1, "logistic": 2, "sigmoid": 2, "tanh": 3,
    "leaky_relu": 5, "elu": 6, "softplus": 7, "gelu": 8,
}
NNK_ACT_SIGMOID = 2
NNK_ACT_SOFTMAX = 4
SOLVERS = {"sgd": 0, "adam": 1, "adamw": 2, "rmsprop": 3}
SPARSE_INPUTS = {"auto": 0, "dense": 1, "sparse": 2}
SCHEDULES = {"constant": 0, "invscaling": 1, "adaptive": 2, "step": 3, "cosine": 4}

try:  # subclass scikit-learn's when it is there, so its tooling recognises it
    from sklearn.exceptions import NotFittedError as _NotFittedBase  # type: ignore
    _NF_BASES: tuple = (_NotFittedBase,)
except Exception:  # pragma: no cover - depends on the environment
    _NF_BASES = (ValueError, AttributeError)


class NotFittedError(*_NF_BASES):  # type: ignore[misc]
    """predict/score/save before fit."""


def _is_sparse(X):
    """Whether ``X`` is a scipy sparse matrix or array."""
    return type(X).__module__.startswith("scipy.sparse")


class _Csr:
    """A scipy sparse matrix as an ``nnk_csr`` (CSR, float32 values, int64
    offsets, int32 sorted indices without duplicates); keeps the arrays alive."""

    def __init__(self, X):
        X = X.tocsr()
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()  # in the input's precision, sorting the indices; on our copy only
        if X.dtype != np.float32:
            X = X.astype(np.float32)
        self.X = X
        self.indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(X.indices, dtype=np.int32)
        self.data = np.ascontiguousarray(X.data, dtype=np.float32)
        n, d = X.shape
        self.c = nnk_csr(n, d, len(self.data), ptr(self.indptr, c_int64), ptr(self.indices, c_int32),
                         ptr(self.data, c_float))

    @property
    def shape(self):
        return self.X.shape


def _x(X, name="X"):
    """X as a C-contiguous float32 2-D array (no copy when it already is one)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    return X


class TrainConfig:
    """Owns an ``nnk_train_config``; setters map 1:1 to the C setters."""

    def __init__(self):
        h = ctypes.POINTER(nnk_train_config)()
        check(lib().nnk_train_config_new(byref(h)))
        self._h = h
        self._cb = None  # keeps the ctypes callback alive while it is installed

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            lib().nnk_train_config_free(h)

    __del__ = close

    def _set(self, fn, *args):
        check(getattr(lib(), "nnk_train_config_set_" + fn)(self._h, *args))
        return self

    def epochs(self, n): return self._set("epochs", int(n))
    def batch_size(self, n): return self._set("batch_size", int(n))
    def learning_rate(self, lr): return self._set("learning_rate", float(lr))
    def alpha(self, a): return self._set("alpha", float(a))
    def solver(self, code): return self._set("solver", int(code))
    def seed(self, s): return self._set("seed", int(s))
    def momentum(self, m, nesterov=True): return self._set("momentum", float(m), int(bool(nesterov)))
    def schedule(self, code, param=0.0): return self._set("schedule", int(code), float(param))
    def threads(self, n): return self._set("threads", int(n))
    def sparse_input(self, code): return self._set("sparse_input", int(code))
    def flush_denormals(self, on): return self._set("flush_denormals", int(bool(on)))

    def beta_1(self, b): return self._set("beta_1", float(b))
    def beta_2(self, b): return self._set("beta_2", float(b))
    def epsilon(self, e): return self._set("epsilon", float(e))
    def rho(self, r): return self._set("rho", float(r))
    def l1(self, v): return self._set("l1", float(v))
    def clip_norm(self, v): return self._set("clip_norm", float(v))
    def shuffle(self, on): return self._set("shuffle", int(bool(on)))
    def warm_start(self, on): return self._set("warm_start", int(bool(on)))
    def tol(self, t): return self._set("tol", float(t))
    def n_iter_no_change(self, n): return self._set("n_iter_no_change", int(n))
    def validation_fraction(self, f): return self._set("validation_fraction", float(f))
    def power_t(self, p): return self._set("power_t", float(p))
    def step_factor(self, f): return self._set("step_factor", float(f))

    def early_stopping(self, enable, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4):
        return self._set("early_stopping", int(bool(enable)), float(validation_fraction), int(n_iter_no_change),
                         float(tol))

    def callback(self, fn):
        """``fn(info)`` after every epoch (``info``: an ``nnk_epoch_info``); a truthy
        return stops training. None removes it."""
        if fn is None:
            self._cb = None
            return self._set("callback", EPOCH_CALLBACK(), None)
        cb = EPOCH_CALLBACK(lambda info, _user: 1 if fn(info.contents) else 0)
        self._set("callback", cb, None)
        self._cb = cb
        return self


class Mlp:
    """Owns an ``nnk_mlp``. ``layers``: [(units, NNK_ACT_* code), ...], the last
    one the output layer (softmax, sigmoid or identity)."""

    def __init__(self, n_inputs, layers, seed=0, _handle=None):
        if _handle is not None:
            self._h = _handle
            return
        units = (c_size_t * len(layers))(*[int(u) for u, _ in layers])
        acts = (c_uint32 * len(layers))(*[int(a) for _, a in layers])
        h = ctypes.POINTER(nnk_mlp)()
        check(lib().nnk_mlp_new(int(n_inputs), len(layers), units, acts, int(seed), byref(h)))
        self._h = h

    @classmethod
    def load(cls, path):
        h = ctypes.POINTER(nnk_mlp)()
        check(lib().nnk_mlp_load(os.fsencode(path), byref(h)))
        return cls(0, [], _handle=h)

    def save(self, path):
        check(lib().nnk_mlp_save(self._h, os.fsencode(path)))

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            lib().nnk_mlp_free(h)

    __del__ = close

    @property
    def n_inputs(self):
        return lib().nnk_mlp_n_inputs(self._h)

    @property
    def n_outputs(self):
        return lib().nnk_mlp_n_outputs(self._h)

    def fit_classifier(self, config, X, labels):
        X = _x(X)
        labels = np.ascontiguousarray(labels, dtype=np.uint32)
        if labels.shape != (X.shape[0],):
            raise ValueError(f"{X.shape[0]} samples but labels has shape {labels.shape}")
        check(lib().nnk_mlp_fit_classifier(self._h, config._h, ptr(X, c_float), X.shape[0], X.shape[1],
                                           ptr(labels, c_uint32)))

    def fit_regressor(self, config, X, Y):
        X = _x(X)
        Y = np.ascontiguousarray(Y, dtype=np.float32)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"{X.shape[0]} samples but targets have shape {Y.shape}")
        check(lib().nnk_mlp_fit_regressor(self._h, config._h, ptr(X, c_float), X.shape[0], X.shape[1],
                                          ptr(Y, c_float), Y.shape[1]))

    def predict_proba(self, X, out=None):
        if _is_sparse(X):  # made dense 4096 rows at a time
            X = X.tocsr()
            res = np.empty((X.shape[0], self.n_outputs), dtype=np.float32)
            for a in range(0, X.shape[0], 4096):
                res[a:a + 4096] = self.predict_proba(X[a:a + 4096].toarray())
            if out is None:
                return res
            if out.shape != res.shape or out.dtype != np.float32:
                raise ValueError(f"out must be a float32 array of shape {res.shape}")
            out[...] = res
            return out
        X = _x(X)
        shape = (X.shape[0], self.n_outputs)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
        check(lib().nnk_mlp_predict_proba(self._h, ptr(X, c_float), X.shape[0], X.shape[1], ptr(out, c_float),
                                          out.size))
        return out

    def predict_class(self, X):
        X = _x(X)
        out = np.empty(X.shape[0], dtype=np.uint32)
        check(lib().nnk_mlp_predict_class(self._h, ptr(X, c_float), X.shape[0], X.shape[1], ptr(out, c_uint32),
                                          out.size))
        return out

    def _fit(self, fn, config, X, targets):
        csr = _Csr(X) if _is_sparse(X) else None
        X = csr if csr is not None else _x(X)
        kind, t = targets
        if kind == "labels":
            t = np.ascontiguousarray(t, dtype=np.uint32)
            if t.shape != (X.shape[0],):
                raise ValueError(f"{X.shape[0]} samples but labels has shape {t.shape}")
            if csr is not None:
                check(getattr(lib(), f"nnk_mlp_{fn}_classifier_csr")(self._h, config._h, byref(csr.c),
                                                                    ptr(t, c_uint32)))
            else:
                check(getattr(lib(), f"nnk_mlp_{fn}_classifier")(self._h, config._h, ptr(X, c_float), X.shape[0],
                                                                X.shape[1], ptr(t, c_uint32)))
        else:
            t = np.ascontiguousarray(t, dtype=np.float32)
            if t.ndim == 1:
                t = t.reshape(-1, 1)
            if t.ndim != 2 or t.shape[0] != X.shape[0]:
                raise ValueError(f"{X.shape[0]} samples but targets have shape {t.shape}")
            if csr is not None:
                check(getattr(lib(), f"nnk_mlp_{fn}_regressor_csr")(self._h, config._h, byref(csr.c),
                                                                   ptr(t, c_float), t.shape[1]))
            else:
                check(getattr(lib(), f"nnk_mlp_{fn}_regressor")(self._h, config._h, ptr(X, c_float), X.shape[0],
                                                               X.shape[1], ptr(t, c_float), t.shape[1]))

    def fit(self, config, X, targets):
        """Trains on ``X`` (a float32-convertible array, or a scipy sparse
        matrix, which goes to the library as CSR and is never made dense as a
        whole) and ``targets``: ``("labels", class indices)`` or ``("dense",
        n_samples × n_outputs values)``."""
        self._fit("fit", config, X, targets)

    def partial_fit(self, config, X, targets):
        """One pass keeping the optimizer state (targets as :meth:`fit`)."""
        self._fit("partial_fit", config, X, targets)

    @property
    def n_layers(self):
        return lib().nnk_mlp_n_layers(self._h)

    def layer(self, i):
        """``(n_in, n_out, NNK_ACT_* code)`` of layer ``i``."""
        n_in, n_out, act = c_size_t(), c_size_t(), c_uint32()
        check(lib().nnk_mlp_layer(self._h, int(i), byref(n_in), byref(n_out), byref(act)))
        return n_in.value, n_out.value, act.value

    def get_params(self, i):
        """Layer ``i``'s weights (``n_in × n_out`` float32) and biases."""
        n_in, n_out, _ = self.layer(i)
        w = np.empty((n_in, n_out), dtype=np.float32)
        b = np.empty(n_out, dtype=np.float32)
        check(lib().nnk_mlp_get_params(self._h, int(i), ptr(w, c_float), w.size, ptr(b, c_float), b.size))
        return w, b

    def set_params(self, i, w, b):
        """Replaces layer ``i``'s weights and biases (shapes as :meth:`get_params`)."""
        n_in, n_out, _ = self.layer(i)
        w = np.ascontiguousarray(w, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        if w.shape != (n_in, n_out) or b.shape != (n_out,):
            raise ValueError(f"layer {i} takes weights of shape {(n_in, n_out)} and biases of shape {(n_out,)}; "
                             f"got {w.shape} and {b.shape}")
        check(lib().nnk_mlp_set_params(self._h, int(i), ptr(w, c_float), w.size, ptr(b, c_float), b.size))

    def history(self):
        """The last fit's history: a dict of ``loss_curve``,
        ``validation_scores``, ``n_iter``, ``steps``, ``samples_seen``,
        ``best_loss``, ``best_validation_score``, ``restored_epoch``,
        ``stopped_early``, ``stopped_by_callback``."""
        s = nnk_fit_summary()
        check(lib().nnk_mlp_fit_history(self._h, byref(s), None, None, 0))
        cap = max(s.n_iter, s.n_validation_scores, 1)
        loss = np.empty(cap, dtype=np.float64)
        val = np.empty(cap, dtype=np.float64)
        check(lib().nnk_mlp_fit_history(self._h, None, ptr(loss, c_double), ptr(val, c_double), cap))
        out = {f: getattr(s, f) for f, _ in nnk_fit_summary._fields_}
        out["loss_curve"] = loss[:s.n_iter].tolist()
        out["validation_scores"] = val[:s.n_validation_scores].tolist()
        return out

    def to_bytes(self):
        """The model in the file format, as bytes (no file is written)."""
        n = c_size_t()
        check(lib().nnk_mlp_to_bytes(self._h, None, 0, byref(n)))
        buf = (c_uint8 * n.value)()
        check(lib().nnk_mlp_to_bytes(self._h, buf, n.value, byref(n)))
        return bytes(buf)

    @classmethod
    def from_bytes(cls, b):
        """A model from :meth:`to_bytes` (or a model file's contents)."""
        b = bytes(b)
        buf = (c_uint8 * len(b)).from_buffer_copy(b)
        h = ctypes.POINTER(nnk_mlp)()
        check(lib().nnk_mlp_from_bytes(buf, len(b), byref(h)))
        return cls(0, [], _handle=h)
