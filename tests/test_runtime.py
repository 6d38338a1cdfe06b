import re

import pytest

import secondopinion
from secondopinion import _core, _runtime


def test_runtime_version_matches_python_onnxruntime():
    import onnxruntime

    assert secondopinion.runtime_version() == onnxruntime.__version__


def test_library_path_is_the_wheels():
    secondopinion.runtime_version()
    assert "onnxruntime/capi/libonnxruntime.so" in _core.ort_library_path()


def test_header_api_version_not_newer_than_runtime():
    minor = int(secondopinion.runtime_version().split(".")[1])
    assert _core.ort_header_api_version() <= minor


def test_second_library_path_is_refused(tmp_path):
    secondopinion.runtime_version()
    with pytest.raises(RuntimeError, match="already loaded"):
        _core.ort_load(str(tmp_path / "other.so"))


def test_missing_override_is_clear(monkeypatch):
    monkeypatch.setenv(_runtime.LIBRARY_ENV, "/nonexistent/libonnxruntime.so")
    with pytest.raises(FileNotFoundError, match=re.escape(_runtime.LIBRARY_ENV)):
        _runtime.find_onnxruntime_library()
