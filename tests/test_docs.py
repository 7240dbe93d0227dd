"""docs/numpy-support.md is generated from the compiler's tables and kept current."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("numpy_support", ROOT / "docs" / "numpy_support.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numpy_support_page_is_current():
    generator = _generator()
    assert generator.PAGE.read_text() == generator.page(), "run `make docs` to regenerate docs/numpy-support.md"


def test_numpy_support_page_lists_what_the_suite_tests():
    text = (ROOT / "docs" / "numpy-support.md").read_text()
    for name in ("np.einsum", "np.linalg.solve", "np.var", "np.pad", "np.arctan2", "np.cumsum", "np.zeros_like"):
        assert f"`{name}`" in text, name
    assert "| `np.argmax` | no |" in text
