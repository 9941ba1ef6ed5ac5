"""scikit-learn estimators over the nnkern trainer: :class:`MLPClassifier` and
:class:`MLPRegressor`.

They subclass scikit-learn's ``BaseEstimator`` with ``ClassifierMixin`` /
``RegressorMixin``, take scikit-learn's parameters with its names and
defaults (then nnkern's own), validate them at ``fit`` as scikit-learn does,
and pass ``sklearn.utils.estimator_checks.check_estimator``. The network
lives in the library (an ``nnk_mlp`` handle); ``coefs_`` and
``intercepts_`` read it and assign it.

Differences from scikit-learn's own MLPs, all deliberate:

- ``solver='lbfgs'`` is refused at ``fit`` (``ValueError``): the library has
  no L-BFGS. ``max_fun`` is validated and otherwise unused, as in
  scikit-learn with another solver.
- Computation is in float32 (inputs are converted; ``coefs_`` are float32);
  probabilities and regression outputs are returned as float64.
- Weights are initialised by the library from ``random_state``: Glorot
  uniform as scikit-learn, but He-scaled for the relu family.
- The learning-rate schedules ``invscaling`` and ``adaptive`` apply to
  ``sgd`` only (scikit-learn's rule); nnkern's ``step`` and ``cosine`` apply
  to every solver.
- ``sample_weight`` is not supported by ``fit``.
- Sparse input (any scipy format, taken as CSR) is never made dense as a
  whole: the library trains on its nonzeros (or, with
  ``sparse_input='dense'``, writes one mini-batch at a time densely), and
  predictions densify 4096 rows at a time.
"""

from __future__ import annotations

import numbers
import os
import pickle
import warnings
import numpy as np

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._lib import NNK_ERR_NON_FINITE, NnkError
from ._model import ACTIVATIONS, SCHEDULES, SOLVERS, SPARSE_INPUTS, Mlp, TrainConfig, _is_sparse

__all__ = ["MLPClassifier", "MLPRegressor"]

NNK_ACT_IDENTITY = 0
NNK_ACT_SIGMOID = 2
NNK_ACT_SOFTMAX = 4
_OUT_ACTIVATION = {NNK_ACT_IDENTITY: "identity", NNK_ACT_SIGMOID: "logistic", NNK_ACT_SOFTMAX: "softmax"}
# scikit-learn's schedules other than "constant" apply to SGD only.
_SGD_ONLY_SCHEDULES = ("invscaling", "adaptive")
_NEVER_STOP = 1 << 62


def _store_params(est, params):
    """Sets each ``__init__`` argument as the attribute of its name, as
    scikit-learn's estimators store their parameters (nothing else)."""
    for k, v in params.items():
        if k not in ("self", "__class__"):
            setattr(est, k, v)


class _BaseMLP(BaseEstimator):
    """The parameters, configuration and fitting shared by both estimators."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS) - {"sigmoid"})],
        "solver": [StrOptions({"lbfgs"} | set(SOLVERS))],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(SCHEDULES))],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "l1": [Interval(numbers.Real, 0, None, closed="left")],
        "clip_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "sparse_input": [StrOptions(set(SPARSE_INPUTS))],
        "n_threads": [Interval(numbers.Integral, 0, None, closed="left")],
        "flush_denormals": ["boolean"],
    }

    # --- the network -----------------------------------------------------------------
    def _layers(self):
        """Hidden sizes as a list of ints (scikit-learn accepts an int too)."""
        h = self.hidden_layer_sizes
        if not hasattr(h, "__iter__"):
            h = [h]
        h = list(h)
        if any(isinstance(u, (bool, np.bool_)) or not isinstance(u, numbers.Integral) or u <= 0 for u in h):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {h}.")
        return [int(u) for u in h]

    @property
    def coefs_(self):
        """Weights per layer, ``(n_in, n_out)`` float32 copies; assigning a list
        of arrays of the same shapes writes them into the network."""
        m = self._fitted_model()
        return [m.get_params(i)[0] for i in range(m.n_layers)]

    @coefs_.setter
    def coefs_(self, coefs):
        m = self._fitted_model()
        for i, w in enumerate(self._per_layer(coefs, "coefs_")):
            m.set_params(i, w, m.get_params(i)[1])

    @property
    def intercepts_(self):
        """Biases per layer, float32 copies; assignable as ``coefs_``."""
        m = self._fitted_model()
        return [m.get_params(i)[1] for i in range(m.n_layers)]

    @intercepts_.setter
    def intercepts_(self, intercepts):
        m = self._fitted_model()
        for i, b in enumerate(self._per_layer(intercepts, "intercepts_")):
            m.set_params(i, m.get_params(i)[0], b)

    def _per_layer(self, values, name):
        values = list(values)
        n = self._fitted_model().n_layers
        if len(values) != n:
            raise ValueError(f"{name} needs {n} arrays, one per layer; got {len(values)}")
        return values

    def _fitted_model(self):
        m = self.__dict__.get("_model")
        if m is None:
            check_is_fitted(self)  # raises NotFittedError
            raise AttributeError("this estimator holds no network")
        return m

    # --- configuration ---------------------------------------------------------------
    def _seed(self):
        """The library's seed: ``random_state`` itself when it is an int, else
        a draw from it (None: numpy's global generator, as scikit-learn)."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return int(rs) & 0xFFFFFFFFFFFFFFFF
        return int(check_random_state(rs).randint(0, np.iinfo(np.int32).max))

    def _config(self, n_samples, seed):
        """A TrainConfig of this estimator's parameters (the library checks the
        numbers again and its message is kept in the ValueError)."""
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not supported by nnkern; use 'adam' (the default), 'sgd', "
                             "'adamw' or 'rmsprop'")
        if self.batch_size == "auto":
            batch = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch = int(np.clip(self.batch_size, 1, n_samples))
        c = TrainConfig()
        c.epochs(self.max_iter).batch_size(batch).learning_rate(self.learning_rate_init).alpha(self.alpha)
        c.solver(SOLVERS[self.solver]).seed(seed).threads(self.n_threads).shuffle(self.shuffle)
        c.sparse_input(SPARSE_INPUTS[self.sparse_input]).flush_denormals(self.flush_denormals)
        if self.solver == "sgd":
            c.momentum(self.momentum, self.nesterovs_momentum)
        c.beta_1(self.beta_1).beta_2(self.beta_2).epsilon(self.epsilon).l1(self.l1)
        c.clip_norm(0.0 if self.clip_norm is None else self.clip_norm)
        schedule = self.learning_rate
        if schedule in _SGD_ONLY_SCHEDULES and self.solver != "sgd":
            schedule = "constant"
        c.schedule(SCHEDULES[schedule], self.power_t if schedule == "invscaling" else 0.0)
        n_no_change = _NEVER_STOP if self.n_iter_no_change == np.inf else int(self.n_iter_no_change)
        c.tol(self.tol).n_iter_no_change(n_no_change)
        if self.early_stopping:
            c.early_stopping(True, self.validation_fraction, n_no_change, self.tol)
        return c

    # --- fitting ---------------------------------------------------------------------
    def _validate_x_y(self, X, y, incremental, reset, binarizer):
        """Validated ``X`` and the library's targets, output width and output
        activation; ``reset`` on a new network."""
        raise NotImplementedError

    def _new_model(self, n_features, n_outputs, out_act, seed):
        act = ACTIVATIONS[self.activation]
        layers = [(u, act) for u in self._layers()] + [(n_outputs, out_act)]
        return Mlp(n_features, layers, seed=seed)

    def _fit(self, X, y, incremental, binarizer=None):
        # A failed fit leaves the estimator as it was (the library keeps the
        # network's weights on any error).
        saved = dict(self.__dict__)
        try:
            return self._fit_once(X, y, incremental, binarizer)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit_once(self, X, y, incremental, binarizer):
        self._validate_params()
        layers = self._layers()
        first = "_model" not in self.__dict__ or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, targets, n_outputs, out_act = self._validate_x_y(X, y, incremental, first, binarizer)
        if not first and [self._model.layer(i)[1] for i in range(self._model.n_layers - 1)] != layers:
            raise ValueError(f"hidden_layer_sizes changed to {layers} since the network was built; fit it afresh "
                             "(warm_start=False)")
        seed = self._seed()
        # Dense inputs as C-contiguous float32; sparse ones go to the library as CSR.
        Xd = X if _is_sparse(X) else np.ascontiguousarray(X, dtype=np.float32)
        cfg = self._config(Xd.shape[0], seed)
        model = self._new_model(Xd.shape[1], n_outputs, out_act, seed) if first else self._model
        errors = []
        if self.verbose:
            def on_epoch(info):
                try:
                    print(f"Iteration {info.epoch + (self.n_iter_ if incremental and not first else 0)}, "
                          f"loss = {info.loss:.8f}")
                    if info.val_score == info.val_score:
                        print(f"Validation score: {info.val_score:f}")
                except BaseException as e:  # never unwind into C
                    errors.append(e)
                    return True
                return False
            cfg.callback(on_epoch)
        try:
            with _as_value_error(fit_x=Xd):
                if incremental:
                    model.partial_fit(cfg, Xd, targets)
                else:
                    model.fit(cfg, Xd, targets)
        finally:
            cfg.close()
        if errors:
            raise errors[0]
        hist = model.history()
        self._model = model
        self._record(hist, Xd.shape[0], first, incremental, n_outputs, out_act)
        return self

    def _record(self, hist, n_samples, first, incremental, n_outputs, out_act):
        """The fitted attributes from the library's history."""
        losses = [float(v) for v in hist["loss_curve"]]
        if first:
            self.loss_curve_ = []
            self.t_ = 0
        self.loss_curve_ = list(self.loss_curve_) + losses
        self.n_iter_ = len(losses)
        self.t_ = int(self.t_) + n_samples * len(losses)
        self.loss_ = losses[-1] if losses else float("nan")
        if self.early_stopping:
            self.validation_scores_ = [float(v) for v in hist["validation_scores"]]
            self.best_validation_score_ = float(hist["best_validation_score"])
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = float(min(self.loss_curve_))
        self.n_layers_ = len(self._layers()) + 2
        self.n_outputs_ = n_outputs
        self.out_activation_ = _OUT_ACTIVATION[out_act]
        if not incremental and self.n_iter_ == self.max_iter and not hist["stopped_early"]:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning)

    def _outputs(self, X):
        """The network's outputs (float32, ``n_samples × n_outputs``)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float32, np.float64), reset=False)
        with _as_value_error():
            return self._model.predict_proba(X)

    # --- persistence -----------------------------------------------------------------
    def save(self, path):
        """Writes the network to ``path`` in the library's model format
        (``nnk_mlp_load`` reads it from C and C++) and the estimator (its
        parameters and fitted attributes, without the network) to
        ``path + ".pkl"``. Pickling the estimator itself also works."""
        m = self._fitted_model()
        state = dict(super().__getstate__())
        state.pop("_model", None)
        m.save(path)
        tmp = str(path) + ".pkl.tmp"
        with open(tmp, "wb") as f:
            pickle.dump((type(self), state), f)
        os.replace(tmp, str(path) + ".pkl")

    @classmethod
    def load(cls, path):
        """Loads what :meth:`save` wrote. A model file without its ``.pkl``
        (trained from C or C++) gives an estimator of default parameters whose
        ``classes_`` are ``0..n_classes-1``."""
        model = Mlp.load(path)
        side = str(path) + ".pkl"
        if os.path.exists(side):
            with open(side, "rb") as f:
                kind, state = pickle.load(f)
            if not (isinstance(kind, type) and issubclass(kind, cls)):
                raise ValueError(f"{side} holds a {kind!r}, not a {cls.__name__}")
            est = kind.__new__(kind)
            est.__dict__.update(state)
            est._model = model
            return est
        return cls._from_model(model)

    @classmethod
    def _from_model(cls, model):
        raise NotImplementedError

    def __getstate__(self):
        state = super().__getstate__()
        if isinstance(state.get("_model"), Mlp):
            state = dict(state)
            state["_model"] = state["_model"].to_bytes()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("_model"), (bytes, bytearray)):
            state = dict(state)
            state["_model"] = Mlp.from_bytes(bytes(state["_model"]))
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _as_value_error:
    """Re-raises the library's argument, shape and value errors as ValueError
    (scikit-learn's convention) with the library's message; out of memory stays
    a MemoryError. With ``fit_x`` (the X a fit handed the library, which
    checks its finiteness), a non-finite-value error whose X holds a NaN or an
    infinity reads as scikit-learn's "Input X contains NaN." or "...
    infinity ...", followed by the library's message naming the value. X is
    looked at only on that error."""

    def __init__(self, fit_x=None):
        self.fit_x = fit_x

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is None or not issubclass(et, NnkError):
            return False
        if self.fit_x is not None and e.code == NNK_ERR_NON_FINITE:
            vals = self.fit_x.data if _is_sparse(self.fit_x) else self.fit_x
            what = ("NaN" if np.isnan(vals).any() else
                    "infinity or a value too large for dtype('float32')"
                    if (np.abs(vals) > np.finfo(np.float32).max).any() else None)
            if what is not None:
                raise ValueError(f"Input X contains {what}. nnkern: {e}") from e
        if not isinstance(e, (ValueError, MemoryError)):
            raise ValueError(str(e)) from e
        return False


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, trained by nnkern.

    scikit-learn's ``MLPClassifier`` parameters with its defaults, then
    nnkern's own:

    l1 : float, default=0.0
        L1 penalty on the weights (``l1·‖W‖₁/batch``).
    clip_norm : float or None, default=None
        Clip each step's global gradient norm to this value.
    sparse_input : {'auto', 'dense', 'sparse'}, default='auto'
        The first layer multiplies only the nonzero inputs ('sparse'), all of
        them ('dense'), or decides by the data's density ('auto').
    n_threads : int, default=0
        Threads for the kernels (0: the process-wide count). Results do not
        depend on it.
    flush_denormals : bool, default=True
        Train with subnormal numbers flushed to zero (as TensorFlow and XLA).

    Binary targets use one logistic output, several classes a softmax, and a
    label-indicator matrix (multi-label) one logistic output per label, as in
    scikit-learn. Fitted attributes are scikit-learn's: ``classes_``,
    ``coefs_``, ``intercepts_``, ``loss_``, ``loss_curve_``, ``best_loss_``,
    ``validation_scores_``, ``best_validation_score_``, ``n_iter_``, ``t_``,
    ``n_layers_``, ``n_outputs_``, ``out_activation_``, ``n_features_in_``
    and ``feature_names_in_``.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, l1=0.0, clip_norm=None, sparse_input="auto",
                 n_threads=0, flush_denormals=True):
        _store_params(self, locals())

    def _validate_x_y(self, X, y, incremental, reset, binarizer):
        # X's values are checked finite by the library, on the copy it
        # trains from (the nonzeros only, on the sparse path): not here too.
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True, dtype=(np.float32, np.float64),
                             reset=reset, ensure_all_finite=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            self._label_binarizer = binarizer if binarizer is not None else LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
            if binarizer is not None and len(np.setdiff1d(unique_labels(y), self.classes_)):
                raise ValueError(f"`y` has classes not in `classes`: {np.setdiff1d(unique_labels(y), self.classes_)}")
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                     f"call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        lb = self._label_binarizer
        if len(lb.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes; got 1 class ({lb.classes_[0]!r})")
        if lb.y_type_.startswith("multilabel"):
            targets = ("dense", np.ascontiguousarray(lb.transform(y), dtype=np.float32))
            return X, targets, len(lb.classes_), NNK_ACT_SIGMOID
        idx = np.searchsorted(lb.classes_, y).astype(np.uint32)
        if len(lb.classes_) == 2:
            return X, ("labels", idx), 1, NNK_ACT_SIGMOID
        return X, ("labels", idx), len(lb.classes_), NNK_ACT_SOFTMAX

    def fit(self, X, y):
        """Trains the network on ``X`` (array-like or sparse, ``n_samples ×
        n_features``) and labels ``y`` (or a label-indicator matrix).
        A new network unless ``warm_start``; returns ``self``."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One pass over ``X``, ``y``, keeping the optimizer state; ``classes``
        (every label of the whole data) is required on the first call."""
        if "_model" not in self.__dict__:
            multilabel = type_of_target(y).startswith("multilabel")
            if classes is None and not multilabel:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            binarizer = LabelBinarizer().fit(y if multilabel else np.asarray(classes))
            return self._fit(X, y, incremental=True, binarizer=binarizer)
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={np.unique(classes)}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_}")
        return self._fit(X, y, incremental=True)

    def predict_proba(self, X):
        """Class probabilities (float64, ``n_samples × n_classes``, in the order
        of ``classes_``)."""
        p = self._outputs(X).astype(np.float64)
        if p.shape[1] == 1 and not self._label_binarizer.y_type_.startswith("multilabel"):
            return np.hstack([1.0 - p, p])
        return p

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def predict(self, X):
        """The predicted class of each sample (label-indicator rows for
        multi-label targets)."""
        p = self._outputs(X)
        if p.shape[1] == 1:
            p = p.ravel()
        return self._label_binarizer.inverse_transform(p)

    @classmethod
    def _from_model(cls, model):
        n_in, n_out, act = model.layer(model.n_layers - 1)
        if act not in (NNK_ACT_SOFTMAX, NNK_ACT_SIGMOID):
            raise ValueError(f"the model's output is {_OUT_ACTIVATION.get(act, act)}, not a classifier's")
        est = cls(hidden_layer_sizes=tuple(model.layer(i)[1] for i in range(model.n_layers - 1)))
        if act == NNK_ACT_SIGMOID and n_out > 1:  # multi-label: one indicator column per output
            est._label_binarizer = LabelBinarizer().fit(np.eye(n_out, dtype=int))
        else:
            est._label_binarizer = LabelBinarizer().fit(np.arange(max(2, n_out)))
        est.classes_ = est._label_binarizer.classes_
        est._model = model
        est.n_features_in_ = model.n_inputs
        est.n_layers_ = model.n_layers + 1
        est.n_outputs_ = n_out
        est.out_activation_ = _OUT_ACTIVATION[act]
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (squared error), trained by nnkern.

    scikit-learn's ``MLPRegressor`` parameters with its defaults (``loss``
    takes only ``'squared_error'``), then nnkern's own as in
    :class:`MLPClassifier`. One target gives 1-D predictions, several
    (multi-output) ``n_samples × n_targets``; fitted attributes as
    scikit-learn's.
    """

    _parameter_constraints: dict = {**_BaseMLP._parameter_constraints, "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, l1=0.0, clip_norm=None,
                 sparse_input="auto", n_threads=0, flush_denormals=True):
        _store_params(self, locals())

    def _validate_x_y(self, X, y, incremental, reset, binarizer):
        # X's values are checked finite by the library (see the classifier).
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True, y_numeric=True,
                             dtype=(np.float32, np.float64), reset=reset, ensure_all_finite=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)
        if not reset and "_model" in self.__dict__ and Y.shape[1] != self._model.n_outputs:
            raise ValueError(f"y has {Y.shape[1]} targets but the network was fitted with {self._model.n_outputs}")
        return X, ("dense", Y), Y.shape[1], NNK_ACT_IDENTITY

    def fit(self, X, y):
        """Trains the network on ``X`` and targets ``y`` (1-D, or ``n_samples ×
        n_targets``); returns ``self``."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One pass over ``X``, ``y``, keeping the optimizer state."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted values (float64; 1-D for one target)."""
        p = self._outputs(X).astype(np.float64)
        return p.ravel() if p.shape[1] == 1 else p

    @classmethod
    def _from_model(cls, model):
        n_in, n_out, act = model.layer(model.n_layers - 1)
        if act != NNK_ACT_IDENTITY:
            raise ValueError(f"the model's output is {_OUT_ACTIVATION.get(act, act)}, not a regressor's")
        est = cls(hidden_layer_sizes=tuple(model.layer(i)[1] for i in range(model.n_layers - 1)))
        est._model = model
        est.n_features_in_ = model.n_inputs
        est.n_layers_ = model.n_layers + 1
        est.n_outputs_ = n_out
        est.out_activation_ = "identity"
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
