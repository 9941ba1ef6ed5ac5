"""nnkern's MLPClassifier and MLPRegressor as scikit-learn estimators:
check_estimator in full, pipelines and searches, clone and pickle, sparse
input, partial_fit, multi-output regression, the fitted attributes."""
import pickle
import tempfile
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
sp = pytest.importorskip("scipy.sparse")

from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nnkern  # noqa: E402
from nnkern import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_check_estimator(estimator, check):
    """Every check of scikit-learn's check_estimator (none is declared as
    expected to fail)."""
    check(estimator)


def test_is_an_estimator_with_sklearn_defaults():
    c, r = MLPClassifier(), MLPRegressor()
    assert is_classifier(c) and is_regressor(r)
    p = c.get_params()
    for k, v in dict(hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=1e-4, batch_size="auto",
                     learning_rate="constant", learning_rate_init=1e-3, power_t=0.5, max_iter=200, shuffle=True,
                     random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                     nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                     beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, l1=0.0, clip_norm=None,
                     sparse_input="auto", n_threads=0, flush_denormals=True).items():
        assert p[k] == v, k
    assert r.get_params()["loss"] == "squared_error"
    # Same names and defaults as scikit-learn's own, for every parameter they share.
    from sklearn.neural_network import MLPClassifier as SkC, MLPRegressor as SkR
    for ours, theirs in ((c, SkC()), (r, SkR())):
        for k, v in theirs.get_params().items():
            assert k in ours.get_params(), k
            assert ours.get_params()[k] == v, k


def test_pipeline_grid_search_and_cross_val(split):
    Xtr, ytr, _, _ = split
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=60, learning_rate_init=0.01, random_state=0))
    gs = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(16,), (32,)], "mlpclassifier__alpha": [1e-4, 1e-2]},
                      cv=3)
    gs.fit(Xtr[:600], ytr[:600])
    assert gs.best_score_ > 0.85 and set(gs.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                                               "mlpclassifier__alpha"}
    scores = cross_val_score(pipe, Xtr[:600], ytr[:600], cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_clone_and_pickle_in_memory(split, monkeypatch):
    Xtr, ytr, Xte, _ = split
    clf = MLPClassifier(hidden_layer_sizes=(24,), max_iter=5, random_state=2).fit(Xtr, ytr)
    c2 = clone(clf)
    assert c2.get_params() == clf.get_params() and not hasattr(c2, "classes_")
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=2).fit(Xtr, Xtr[:, :3] + 1.0)

    def no_temp_files(*a, **k):
        raise AssertionError("pickling must not create temporary files")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, no_temp_files)
    for est, method in ((clf, "predict_proba"), (reg, "predict")):
        back = pickle.loads(pickle.dumps(est))
        assert np.array_equal(getattr(back, method)(Xte), getattr(est, method)(Xte))
        assert back.loss_curve_ == est.loss_curve_ and back.n_iter_ == est.n_iter_
        for a, b in zip(back.coefs_, est.coefs_):
            assert np.array_equal(a, b)


def test_sparse_input_matches_dense(split):
    Xtr, ytr, Xte, _ = split
    Xz, Xtz = np.where(Xtr > 0.5, Xtr, 0.0), np.where(Xte > 0.5, Xte, 0.0)
    for mode in ("auto", "sparse", "dense"):
        kw = dict(hidden_layer_sizes=(16,), max_iter=4, random_state=1, sparse_input=mode)
        dense = MLPClassifier(**kw).fit(Xz, ytr)
        csr = MLPClassifier(**kw).fit(sp.csr_matrix(Xz), ytr)
        assert np.array_equal(csr.predict_proba(sp.csr_matrix(Xtz)), dense.predict_proba(Xtz)), mode
        assert np.array_equal(csr.predict_proba(Xtz), dense.predict_proba(Xtz)), mode
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    a = reg.fit(sp.csc_matrix(Xz), Xz[:, 10]).predict(Xtz)
    b = clone(reg).fit(Xz, Xz[:, 10]).predict(Xtz)
    assert np.array_equal(a, b)


def test_partial_fit_equals_fit_without_shuffling(split):
    Xtr, ytr, Xte, _ = split
    kw = dict(hidden_layer_sizes=(16,), random_state=5, shuffle=False, batch_size=64)
    fitted = MLPClassifier(max_iter=3, **kw).fit(Xtr, ytr)
    inc = MLPClassifier(**kw)
    for _ in range(3):
        inc.partial_fit(Xtr, ytr, classes=np.arange(10))
    assert np.array_equal(inc.predict_proba(Xte), fitted.predict_proba(Xte))
    assert inc.n_iter_ == 1 and inc.t_ == 3 * len(ytr) == fitted.t_ and len(inc.loss_curve_) == 3
    np.testing.assert_array_equal(inc.loss_curve_, fitted.loss_curve_)
    # The first call needs classes; later ones may see a subset of them.
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(Xtr, ytr)
    inc.partial_fit(Xtr[ytr < 3], ytr[ytr < 3])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        inc.partial_fit(Xtr[:5], np.array([0, 1, 2, 3, 11]))
    with pytest.raises(ValueError, match="X has 63 features"):
        inc.partial_fit(Xtr[:, :63], ytr)
    # The regressor too.
    r1 = MLPRegressor(max_iter=2, **kw).fit(Xtr, Xtr[:, :2])
    r2 = MLPRegressor(**kw)
    r2.partial_fit(Xtr, Xtr[:, :2]).partial_fit(Xtr, Xtr[:, :2])
    assert np.array_equal(r1.predict(Xte), r2.predict(Xte))


def test_continuous_targets_are_refused_by_the_classifier(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X[:50], np.linspace(0, 1, 50))


def test_multi_output_regression():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (600, 4))
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] * X[:, 3], np.sin(X[:, 0])])
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0, learning_rate_init=3e-3).fit(X, Y)
    pred = reg.predict(X)
    assert pred.shape == (600, 3) and pred.dtype == np.float64
    assert reg.score(X, Y) > 0.9 and reg.n_outputs_ == 3 and reg.out_activation_ == "identity"
    one = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (600,)


def test_multilabel_classification():
    rng = np.random.RandomState(1)
    X = rng.uniform(-1, 1, (500, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0]).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0, learning_rate_init=3e-3).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.predict(X).shape == (500, 3)
    assert clf.score(X, Y) > 0.8 and clf.predict_proba(X).shape == (500, 3)


def test_fitted_attributes(split):
    pd = pytest.importorskip("pandas")
    Xtr, ytr, _, _ = split
    df = pd.DataFrame(Xtr, columns=[f"px{i}" for i in range(64)])
    clf = MLPClassifier(hidden_layer_sizes=(20, 10), max_iter=4, random_state=0).fit(df, ytr)
    assert [c.shape for c in clf.coefs_] == [(64, 20), (20, 10), (10, 10)]
    assert [b.shape for b in clf.intercepts_] == [(20,), (10,), (10,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10 and clf.out_activation_ == "softmax"
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4 and clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.t_ == 4 * len(ytr)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert list(clf.feature_names_in_) == list(df.columns) and clf.n_features_in_ == 64
    es = MLPClassifier(hidden_layer_sizes=(20,), max_iter=30, early_stopping=True, n_iter_no_change=3,
                       random_state=0).fit(Xtr, ytr)
    assert len(es.validation_scores_) == es.n_iter_ and es.best_loss_ is None
    assert es.best_validation_score_ == max(es.validation_scores_)
    # coefs_ are copies; assigning them writes the network.
    w = clf.coefs_
    w[0][:] = 0.0
    assert clf.coefs_[0].any()
    clf.coefs_ = w
    assert not clf.coefs_[0].any()
    assert np.ptp(clf.predict_proba(df.iloc[:20]), axis=0).max() < 1e-6  # every row gives the same output
    with pytest.raises(ValueError, match="weights of shape"):
        clf.coefs_ = [np.zeros((3, 3))] * 3


def test_warm_start_and_convergence_warning(split):
    Xtr, ytr, Xte, _ = split
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0, warm_start=True)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\)"):
        clf.fit(Xtr, ytr)
    w = clf.coefs_[0].copy()
    clf.fit(Xtr, ytr)  # continues from the trained weights
    assert len(clf.loss_curve_) == 4 and clf.loss_curve_[2] < clf.loss_curve_[0]
    assert not np.array_equal(w, clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(Xtr[ytr < 5], ytr[ytr < 5])
    fresh = clone(clf).set_params(warm_start=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.fit(Xtr, ytr).fit(Xtr, ytr)
    assert len(fresh.loss_curve_) == 2


def test_library_errors_are_value_errors_with_the_message(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"momentum 1 must be in \[0, 1\)"):
        MLPClassifier(solver="sgd", momentum=1.0).fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="solver='lbfgs' is not supported"):
        MLPRegressor(solver="lbfgs").fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X[:50], y[:50])
    assert issubclass(nnkern.NnkValueError, ValueError) and issubclass(nnkern.NnkValueError, nnkern.NnkError)


def test_sparse_input_is_never_dense_as_a_whole(monkeypatch):
    rng = np.random.RandomState(0)
    X = sp.random(5000, 50, density=0.1, format="csr", random_state=0, dtype=np.float64)
    y = (X[:, 0].toarray().ravel() > 0).astype(int) + (X[:, 1].toarray().ravel() > 0)
    dense = X.toarray()
    calls = []
    real = sp.csr_matrix.toarray

    def toarray(self, *a, **k):
        calls.append(self.shape[0])
        assert self.shape[0] <= 4096, f"a {self.shape} sparse matrix made dense"
        return real(self, *a, **k)

    for mode in ("auto", "sparse", "dense"):
        kw = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0, sparse_input=mode)
        ref = MLPClassifier(**kw).fit(dense, y).predict_proba(dense)
        monkeypatch.setattr(sp.csr_matrix, "toarray", toarray)
        est = MLPClassifier(**kw).fit(X, y)
        got = est.predict_proba(X)
        monkeypatch.undo()
        assert np.array_equal(got, ref), mode
    assert calls and max(calls) <= 4096
    # Unsorted indices and duplicates (scipy sums them) train as the canonical
    # matrix does, and the caller's matrix is left as it was.
    messy = sp.csr_matrix((np.r_[X.data, [0.5, -0.5]], np.r_[X.indices, [3, 3]],
                           np.r_[X.indptr[:2], X.indptr[2:] + 2]), shape=X.shape)
    messy.indices[:2] = messy.indices[:2][::-1].copy()
    messy.has_sorted_indices = False
    before = (messy.indices.copy(), messy.data.copy())
    canon = messy.copy()
    canon.sum_duplicates()
    kw = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    a = MLPClassifier(**kw).fit(messy, y).predict_proba(dense)
    b = MLPClassifier(**kw).fit(canon.toarray(), y).predict_proba(dense)
    assert np.array_equal(a, b)
    assert np.array_equal(messy.indices, before[0]) and np.array_equal(messy.data, before[1])
    del rng
