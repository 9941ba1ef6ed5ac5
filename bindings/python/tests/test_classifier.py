import pickle

import numpy as np
import pytest

import nnkern
from nnkern import MLPClassifier, NnkError

pytest.importorskip("sklearn")
from sklearn.exceptions import NotFittedError  # noqa: E402

# The settings these tests were written for (scikit-learn's defaults are (100,), 'auto', 200).
FAST = dict(hidden_layer_sizes=(128,), batch_size=32, max_iter=10, random_state=0)


def test_digits_accuracy(split):
    Xtr, ytr, Xte, yte = split
    clf = MLPClassifier(**FAST).fit(Xtr, ytr)
    acc = clf.score(Xte, yte)
    print(f"python MLPClassifier digits accuracy {acc:.4f}")
    assert acc >= 0.9
    assert clf.n_iter_ == 10 and len(clf.loss_curve_) == 10 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.classes_.tolist() == list(range(10)) and clf.n_features_in_ == 64
    p = clf.predict_proba(Xte)
    assert p.dtype == np.float64 and p.shape == (len(yte), 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (clf.classes_[p.argmax(axis=1)] == clf.predict(Xte)).mean() > 0.99


def test_seeded_fit_is_deterministic(split):
    Xtr, ytr, Xte, _ = split
    a = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=3).fit(Xtr, ytr).predict_proba(Xte)
    b = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=3).fit(Xtr, ytr).predict_proba(Xte)
    assert np.array_equal(a, b)


def test_arbitrary_labels_and_other_solvers(split):
    Xtr, ytr, Xte, yte = split
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), activation="tanh", solver="sgd", learning_rate_init=0.05,
                        max_iter=15, batch_size="auto", momentum=0.9)
    clf.fit(Xtr, names[ytr])
    assert sorted(clf.classes_.tolist()) == clf.classes_.tolist() and set(clf.classes_) == set(names)
    assert clf.predict(Xte[:5]).dtype.kind == "U"
    assert clf.score(Xte, names[yte]) >= 0.85
    # Two classes (one logistic output, as scikit-learn); early stopping records validation scores.
    mask = (ytr == 3) | (ytr == 8)
    b = MLPClassifier(hidden_layer_sizes=(8,), solver="rmsprop", early_stopping=True, max_iter=30,
                      n_iter_no_change=3).fit(Xtr[mask], ytr[mask] == 3)
    assert b.classes_.tolist() == [False, True] and b.predict_proba(Xtr[:3]).shape == (3, 2)
    assert b.out_activation_ == "logistic" and b.coefs_[-1].shape == (8, 1) and b.n_outputs_ == 1
    assert len(b.validation_scores_) == b.n_iter_ <= 30


def test_params_protocol_and_clone():
    clf = MLPClassifier(hidden_layer_sizes=(7,), alpha=0.5)
    p = clf.get_params()
    assert p["hidden_layer_sizes"] == (7,) and p["alpha"] == 0.5 and p["max_iter"] == 200
    assert clf.set_params(max_iter=3, solver="sgd") is clf and clf.max_iter == 3
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        clf.set_params(nope=1)
    clone = type(clf)(**clf.get_params())  # what sklearn.base.clone does
    assert clone.get_params() == clf.get_params()
    try:
        from sklearn.base import clone as sk_clone
    except ImportError:
        return
    assert sk_clone(clf).get_params() == clf.get_params()


def test_save_load_and_pickle(split, tmp_path):
    Xtr, ytr, Xte, _ = split
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(Xtr, ytr + 100)
    path = tmp_path / "digits.nnk"
    clf.save(path)
    back = MLPClassifier.load(path)
    assert np.array_equal(back.predict_proba(Xte), clf.predict_proba(Xte))
    assert back.classes_.tolist() == list(range(100, 110)) and back.get_params() == clf.get_params()
    # The model file alone is the library's format: loadable without the sidecar.
    (tmp_path / "digits.nnk.pkl").unlink()
    raw = MLPClassifier.load(path)
    assert raw.classes_.tolist() == list(range(10))
    assert np.array_equal(raw.predict(Xte) + 100, clf.predict(Xte))
    m = nnkern.Mlp.load(path)
    assert (m.n_inputs, m.n_outputs) == (64, 10)
    p2 = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(p2.predict_proba(Xte), clf.predict_proba(Xte))


def test_low_level_regressor():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    Y = (X[:, :1] * 2 - X[:, 1:]).astype(np.float32)
    m = nnkern.Mlp(2, [(16, nnkern.ACTIVATIONS["tanh"]), (1, 0)], seed=1)
    seen = []
    cfg = nnkern.TrainConfig().epochs(50).learning_rate(1e-2).batch_size(32)
    m.fit_regressor(cfg, X, Y)
    cfg.callback(lambda info: seen.append(info.loss) or info.epoch >= 4)  # a truthy return stops
    m.fit_regressor(cfg, X, Y)
    assert len(seen) == 4
    assert float(np.mean((m.predict_proba(X) - Y) ** 2)) < 0.05


# ---- error paths -----------------------------------------------------------------------

def test_bad_names_are_value_errors(digits):
    X, y = digits
    with pytest.raises(ValueError, match="'activation' parameter of MLPClassifier must be"):
        MLPClassifier(activation="swish").fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="solver='lbfgs' is not supported"):
        MLPClassifier(solver="lbfgs").fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(0,)).fit(X[:50], y[:50])


def test_bad_numbers_carry_the_library_message(digits):
    X, y = digits
    # scikit-learn's own checks first, with its messages...
    with pytest.raises(ValueError, match="'learning_rate_init' parameter of MLPClassifier must be"):
        MLPClassifier(learning_rate_init=-1.0).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="'max_iter' parameter"):
        MLPClassifier(max_iter=0).fit(X[:50], y[:50])
    # ...then the library's, a ValueError with its message inside (scikit-learn allows momentum = 1).
    with pytest.raises(ValueError) as e:
        MLPClassifier(solver="sgd", momentum=1.0).fit(X[:50], y[:50])
    assert isinstance(e.value, NnkError) and e.value.code == 1
    assert e.value.message == "invalid argument: momentum 1 must be in [0, 1)"
    # The low-level config refuses bad numbers by itself.
    with pytest.raises(NnkError, match="alpha = NaN is out of range"):
        nnkern.TrainConfig().alpha(float("nan"))
    with pytest.raises(NnkError, match="epochs must be"):
        nnkern.TrainConfig().epochs(0)


def test_nan_in_x(digits):
    X, y = digits
    Xn = X[:50].copy()
    Xn[3, 7] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier().fit(Xn, y[:50])
    clf = MLPClassifier(max_iter=1).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(Xn)
    # The library checks again by itself, naming the value.
    with pytest.raises(NnkError) as e:
        clf._model.predict_proba(Xn)
    assert e.value.code == 5 and e.value.status == "non-finite value"
    assert "x[3][7] = NaN is not finite" in e.value.message


def test_non_finite_x_at_fit_names_the_value_and_keeps_the_model(digits):
    """fit leaves X's finiteness to the library (one check, on the values it
    trains from): scikit-learn's wording, the library's detail, for dense and
    sparse X, both estimators, and a fitted estimator left as it was."""
    sp = pytest.importorskip("scipy.sparse")
    X, y = digits
    clf = MLPClassifier(max_iter=2, random_state=0).fit(X[:60], y[:60])
    before = [c.copy() for c in clf.coefs_]
    for bad, what in ((np.inf, "infinity"), (-np.inf, "infinity"), (np.nan, "NaN"), (1e300, "infinity")):
        Xb = X[:60].astype(np.float64)
        Xb[5, 9] = bad
        for data in (Xb, sp.csr_matrix(Xb)):
            for sparse_input in ("auto", "sparse", "dense"):
                est = clf.set_params(warm_start=True, sparse_input=sparse_input)
                with pytest.raises(ValueError, match=f"Input X contains {what}.*x\\[5\\]\\[9\\] = "):
                    est.fit(data, y[:60])
                assert all((a == b).all() for a, b in zip(est.coefs_, before))
        with pytest.raises(ValueError, match=f"Input X contains {what}"):
            nnkern.MLPRegressor(max_iter=1).fit(Xb, y[:60].astype(float))
        with pytest.raises(ValueError, match=f"Input X contains {what}"):
            MLPClassifier().partial_fit(Xb, y[:60], classes=np.unique(y))


def test_wrong_n_features_at_predict(digits):
    X, y = digits
    clf = MLPClassifier(max_iter=1).fit(X[:50], y[:50])
    for call in (clf.predict, clf.predict_proba):
        with pytest.raises(ValueError, match="X has 63 features, but MLPClassifier is expecting 64 features"):
            call(X[:5, :63])
    with pytest.raises(NnkError) as e:
        clf._model.predict_proba(X[:5, :63])
    assert e.value.code == 3 and e.value.message == "shape mismatch: n_features = 63, the model takes 64"
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        clf.predict(X[0])


def test_label_count_mismatch(digits):
    X, y = digits
    with pytest.raises(ValueError, match="inconsistent numbers of samples: \\[50, 49\\]"):
        MLPClassifier().fit(X[:50], y[:49])
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        MLPClassifier().fit(X[:5], np.zeros(5))
    with pytest.raises(ValueError, match="labels has shape"):
        nnkern.Mlp(64, [(10, 4)]).fit_classifier(nnkern.TrainConfig(), X[:5], y[:4])
    # A label >= classes through the low-level API: the library refuses it.
    with pytest.raises(NnkError) as e:
        nnkern.Mlp(64, [(2, 4)]).fit_classifier(nnkern.TrainConfig(), X[:5], np.array([0, 1, 2, 0, 1]))
    assert e.value.code == 1


def test_predict_before_fit(digits):
    X, _ = digits
    clf = MLPClassifier()
    for call in (clf.predict, clf.predict_proba, lambda X: clf.score(X, np.zeros(len(X)))):
        with pytest.raises(NotFittedError, match="not fitted"):
            call(X[:3])
    with pytest.raises(ValueError):  # NotFittedError is a ValueError, as in scikit-learn
        clf.save("/nonexistent")


def test_bad_model_files(tmp_path):
    for i, body in enumerate([b"garbage garbage garbage", b"NNKMLP", b""]):
        p = tmp_path / f"bad{i}.nnk"
        p.write_bytes(body)
        with pytest.raises(NnkError) as e:
            MLPClassifier.load(p)
        assert e.value.code == 8 and e.value.status == "bad file format" and str(p) in e.value.message, e.value
    with pytest.raises(NnkError) as e:
        MLPClassifier.load(tmp_path / "missing.nnk")
    assert e.value.code == 7 and "cannot open" in e.value.message
    with pytest.raises(NnkError) as e:
        nnkern.Mlp.load(tmp_path)
    assert e.value.code == 7 and "is a directory" in e.value.message


def test_bad_layer_spec_is_refused_by_the_library():
    with pytest.raises(NnkError) as e:
        nnkern.Mlp(4, [(3, 99), (2, 4)])
    assert e.value.code == 1 and "unknown activation code 99" in e.value.message


def test_callback_exception_propagates(digits):
    X, y = digits
    clf = MLPClassifier(max_iter=5, verbose=True)
    orig = print

    import builtins

    def boom(*a, **k):
        raise KeyboardInterrupt

    builtins.print = boom
    try:
        with pytest.raises(KeyboardInterrupt):
            clf.fit(X[:100], y[:100])
    finally:
        builtins.print = orig
    assert not hasattr(clf, "classes_") and not hasattr(clf, "coefs_")


def test_sparse_input_modes(split):
    Xtr, ytr, Xte, _ = split
    # Zeros kept (the digits before scaling have many): both paths agree.
    Xz, Xtz = np.where(Xtr > 0.5, Xtr, 0.0), np.where(Xte > 0.5, Xte, 0.0)
    kw = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=1)
    a = MLPClassifier(sparse_input="dense", **kw).fit(Xz, ytr).predict_proba(Xtz)
    b = MLPClassifier(sparse_input="sparse", **kw).fit(Xz, ytr).predict_proba(Xtz)
    c = MLPClassifier(**kw).fit(Xz, ytr).predict_proba(Xtz)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.array_equal(c, a) or np.array_equal(c, b)
    with pytest.raises(ValueError, match="sparse_input"):
        MLPClassifier(sparse_input="bogus", max_iter=1).fit(Xz, ytr)


def test_flush_denormals_both_modes(split):
    Xtr, ytr, Xte, yte = split
    kw = dict(hidden_layer_sizes=(32,), max_iter=15, batch_size=32, random_state=1)
    on = MLPClassifier(**kw).fit(Xtr, ytr)
    off = MLPClassifier(flush_denormals=False, **kw).fit(Xtr, ytr)
    assert on.get_params()["flush_denormals"] is True
    # Flushing zeroes results below f32's smallest normal: the models may differ slightly.
    np.testing.assert_allclose(on.predict_proba(Xte), off.predict_proba(Xte), atol=1e-6)
    assert on.score(Xte, yte) > 0.9
    with pytest.raises(TypeError):
        MLPClassifier(flush_denormal=True)
