"""The Python example of the repository README runs as written."""
import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_readme_python_example(tmp_path, monkeypatch):
    import pytest
    pytest.importorskip("sklearn")
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```python\n(.*?)```", text, flags=re.S)
    assert m, "README has a Python example"
    (tmp_path / "data").mkdir()
    os.symlink(ROOT / "data" / "digits.csv", tmp_path / "data" / "digits.csv")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(m.group(1), "README.md", "exec"), {})
    assert out.getvalue().strip() == "3 shape mismatch: n_features = 10, the model takes 64"
    assert (tmp_path / "digits.nnk").is_file() and (tmp_path / "digits.nnk.pkl").is_file()
