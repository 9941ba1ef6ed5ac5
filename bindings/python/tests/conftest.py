import os
from pathlib import Path

# scikit-learn's check_array_api_input runs only with SciPy's array-API mode,
# which must be chosen before SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def digits():
    """(X scaled to [0, 1], y) of the bundled UCI digits."""
    path = Path(os.environ.get("NNKERN_DIGITS", ROOT / "data" / "digits.csv"))
    d = np.loadtxt(path, delimiter=",", skiprows=1)
    assert d.shape == (1797, 65)
    return (d[:, :64] / 16.0).astype(np.float32), d[:, 64].astype(np.int64)


@pytest.fixture(scope="session")
def split(digits):
    """A seeded 80/20 shuffle split."""
    X, y = digits
    perm = np.random.RandomState(0).permutation(len(y))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return X[tr], y[tr], X[te], y[te]
