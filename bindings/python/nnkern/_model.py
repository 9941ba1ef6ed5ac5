"""The trainer: thin handle classes (`Mlp`, `TrainConfig`) and a
scikit-learn-compatible `MLPClassifier` on top of them."""

from __future__ import annotations

import ctypes
import json
import os
import tempfile
from ctypes import byref, c_float, c_size_t, c_uint32

import numpy as np

from ._lib import EPOCH_CALLBACK, NnkError, check, lib, nnk_mlp, nnk_train_config, ptr

__all__ = ["Mlp", "TrainConfig", "MLPClassifier", "NotFittedError", "ACTIVATIONS", "SOLVERS"]

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

    def to_bytes(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.nnk")
            self.save(p)
            with open(p, "rb") as f:
                return f.read()

    @classmethod
    def from_bytes(cls, b):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.nnk")
            with open(p, "wb") as f:
                f.write(b)
            return cls.load(p)


class MLPClassifier:
    """A multilayer-perceptron classifier with scikit-learn's interface.

    Parameters are plain attributes (``get_params``/``set_params``,
    ``sklearn.base.clone`` work; scikit-learn is not required) and validated in
    ``fit``. Labels may be any sortable values; ``classes_`` holds them sorted.
    The output layer is a softmax over ``len(classes_)`` units.

    ``random_state`` seeds the weights and the shuffling (None: a fresh seed).
    ``batch_size="auto"`` is ``min(200, n_samples)``. Beyond scikit-learn:
    ``activation`` also takes ``leaky_relu``, ``elu``, ``softplus``, ``gelu``;
    ``solver`` also ``adamw``, ``rmsprop``; ``learning_rate`` also ``step``
    (``power_t`` epochs per halving) and ``cosine``; ``n_threads`` (0 = the
    process-wide count); ``sparse_input`` (``auto``: the first layer multiplies
    only the nonzero inputs when at most 25% are nonzero, as in MNIST;
    ``dense``; ``sparse``; the results agree up to the rounding of the sums);
    ``flush_denormals`` (True: train with subnormal numbers flushed to zero,
    as TensorFlow and XLA do; on Intel cores Adam is otherwise several times
    slower once unused weights turn subnormal).

    Fitted attributes: ``classes_``, ``n_features_in_``, ``n_iter_``,
    ``loss_curve_``, ``validation_scores_`` (with early stopping), ``epoch_seconds_``
    (the library's time for each epoch; not in scikit-learn).
    """

    _PARAMS = ("hidden_layer_sizes", "activation", "solver", "alpha", "batch_size", "learning_rate",
               "learning_rate_init", "power_t", "max_iter", "random_state", "momentum", "nesterovs_momentum",
               "early_stopping", "validation_fraction", "n_iter_no_change", "tol", "n_threads", "verbose",
               "sparse_input", "flush_denormals")

    def __init__(self, hidden_layer_sizes=(128,), activation="relu", solver="adam", alpha=1e-4, batch_size=32,
                 learning_rate="constant", learning_rate_init=1e-3, power_t=0.5, max_iter=10, random_state=0,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, n_threads=0, verbose=False, sparse_input="auto",
                 flush_denormals=True):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.random_state = random_state
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_threads = n_threads
        self.sparse_input = sparse_input
        self.flush_denormals = flush_denormals
        self.verbose = verbose

    # --- scikit-learn parameter protocol -------------------------------------------------
    def get_params(self, deep=True):
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"invalid parameter {k!r} for MLPClassifier; valid: {', '.join(self._PARAMS)}")
            setattr(self, k, v)
        return self

    def __repr__(self):
        defaults = MLPClassifier().get_params()
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"MLPClassifier({changed})"

    # --- training ---------------------------------------------------------------------
    @staticmethod
    def _code(table, value, what):
        if not isinstance(value, str) or value not in table:
            raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(table)}")
        return table[value]

    def _config(self):
        act = self._code(ACTIVATIONS, self.activation, "activation")
        solver = self._code(SOLVERS, self.solver, "solver")
        schedule = self._code(SCHEDULES, self.learning_rate, "learning_rate")
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
        if any(not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        bs = 0 if self.batch_size == "auto" else self.batch_size
        if not isinstance(bs, (int, np.integer)) or bs < 0:
            raise ValueError(f"batch_size must be a positive integer or 'auto', got {self.batch_size!r}")
        seed = self.random_state
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        elif isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(0, 2**31 - 1))
        elif not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"random_state must be None, a RandomState or a non-negative int, got {seed!r}")
        # The library validates the numbers (NnkError with its message).
        cfg = TrainConfig()
        cfg.epochs(self.max_iter).batch_size(bs).learning_rate(self.learning_rate_init).alpha(self.alpha)
        cfg.solver(solver).seed(seed).threads(self.n_threads)
        cfg.sparse_input(self._code(SPARSE_INPUTS, self.sparse_input, "sparse_input"))
        cfg.flush_denormals(self.flush_denormals)
        if self.solver == "sgd":
            cfg.momentum(self.momentum, self.nesterovs_momentum)
        cfg.schedule(schedule, self.power_t)
        cfg.early_stopping(self.early_stopping, self.validation_fraction, self.n_iter_no_change, self.tol)
        return cfg, hidden, act, int(seed)

    def fit(self, X, y):
        X = _x(X)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sample), got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]} labels")
        classes, idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes, y has {len(classes)}")
        cfg, hidden, act, seed = self._config()
        model = Mlp(X.shape[1], [(h, act) for h in hidden] + [(len(classes), NNK_ACT_SOFTMAX)], seed=seed)
        losses, val, secs = [], [], []
        err = []

        def on_epoch(info):
            try:
                losses.append(info.loss)
                secs.append(info.seconds)
                if info.val_score == info.val_score:  # not NaN
                    val.append(info.val_score)
                if self.verbose:
                    print(f"Iteration {info.epoch}, loss = {info.loss:.8f}")
            except BaseException as e:  # never let an exception unwind into C
                err.append(e)
                return True
            return False

        cfg.callback(on_epoch)
        try:
            model.fit_classifier(cfg, X, idx.astype(np.uint32))
        finally:
            cfg.callback(None)
            cfg.close()
        if err:
            raise err[0]
        self._model = model
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.n_iter_ = len(losses)
        self.loss_curve_ = losses
        self.epoch_seconds_ = secs
        if self.early_stopping:
            self.validation_scores_ = val
        return self

    # --- prediction ------------------------------------------------------------------
    def _fitted(self):
        m = getattr(self, "_model", None)
        if m is None:
            raise NotFittedError("This MLPClassifier instance is not fitted yet; call 'fit' first.")
        return m

    def predict_proba(self, X):
        m = self._fitted()
        p = m.predict_proba(X)
        if p.shape[1] == 1:  # a one-sigmoid binary model loaded from a file
            p = np.hstack([1.0 - p, p])
        return p

    def predict(self, X):
        idx = self._fitted().predict_class(X)
        return self.classes_[idx]

    def score(self, X, y, sample_weight=None):
        y = np.asarray(y)
        hit = (self.predict(X) == y).astype(np.float64)
        return float(np.average(hit, weights=sample_weight))

    # --- persistence -----------------------------------------------------------------
    def save(self, path):
        """Writes the network to ``path`` in the library's model format (loadable
        from C/C++ with ``nnk_mlp_load``) and ``classes_`` plus the parameters to
        ``path + ".json"``."""
        m = self._fitted()
        classes = self.classes_
        meta = {"format": "nnkern-python-1", "params": self.get_params(),
                "classes": classes.tolist(), "classes_dtype": classes.dtype.str}
        meta["params"]["hidden_layer_sizes"] = list(np.atleast_1d(self.hidden_layer_sizes).tolist())
        if isinstance(meta["params"]["random_state"], np.random.RandomState):
            meta["params"]["random_state"] = None
        m.save(path)
        tmp = str(path) + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, str(path) + ".json")

    @classmethod
    def load(cls, path):
        """Loads a model written by :meth:`save`. Without the ``.json`` sidecar
        (a model trained from C/C++), ``classes_`` is ``0..n_outputs-1``."""
        model = Mlp.load(path)
        meta_path = str(path) + ".json"
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            p = meta["params"]
            p["hidden_layer_sizes"] = tuple(p["hidden_layer_sizes"])
            est = cls(**{k: v for k, v in p.items() if k in cls._PARAMS})
            classes = np.array(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
            if len(classes) != max(2, model.n_outputs):
                raise ValueError(f"{meta_path}: {len(classes)} classes but the model has {model.n_outputs} outputs")
        else:
            est = cls()
            classes = np.arange(max(2, model.n_outputs))
        est._model = model
        est.classes_ = classes
        est.n_features_in_ = model.n_inputs
        return est

    def __getstate__(self):
        state = self.__dict__.copy()
        if state.get("_model") is not None:
            state["_model"] = state["_model"].to_bytes()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("_model"), bytes):
            state["_model"] = Mlp.from_bytes(state["_model"])
        self.__dict__.update(state)
