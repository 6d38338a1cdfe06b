"""Locating and loading ONNX Runtime for the C++ core.

The C++ core does not link against ONNX Runtime; it ``dlopen``s the shared
library that the ``onnxruntime`` wheel ships (``onnxruntime/capi/``). This
module finds that file and hands its path to the core once per process.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import threading

from . import _core

_lock = threading.Lock()

#: Environment variable that overrides where the ONNX Runtime library is found.
LIBRARY_ENV = "SECONDOPINION_ORT_LIBRARY"


def find_onnxruntime_library() -> str:
    """Return the path of the ONNX Runtime shared library to load.

    ``$SECONDOPINION_ORT_LIBRARY`` wins; otherwise the library inside the
    installed ``onnxruntime`` package is used.
    """
    override = os.environ.get(LIBRARY_ENV)
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"{LIBRARY_ENV}={override!r} does not name a file")
        return override
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the onnxruntime package is not installed; `pip install onnxruntime` "
            f"or set {LIBRARY_ENV} to a libonnxruntime.so"
        )
    capi = os.path.join(list(spec.submodule_search_locations)[0], "capi")
    candidates = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so*")), key=len)
    if not candidates:
        raise ImportError(
            f"no libonnxruntime.so* in {capi}; reinstall onnxruntime "
            f"or set {LIBRARY_ENV} to a libonnxruntime.so"
        )
    # Prefer the fully versioned name (libonnxruntime.so.1.32.0): it is the real file.
    return candidates[-1]


def ensure_loaded() -> str:
    """Load ONNX Runtime into the C++ core if not yet done; return its version."""
    with _lock:
        if _core.ort_loaded():
            return str(_core.ort_version())
        return str(_core.ort_load(find_onnxruntime_library()))


def runtime_version() -> str:
    """Version of the ONNX Runtime library the C++ core runs (loads it if needed)."""
    return ensure_loaded()
