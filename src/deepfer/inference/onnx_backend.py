"""The fast CPU path: an exported model run by onnxruntime (``pip install -e '.[onnx]'``).

Reads the ``.onnx`` files :mod:`deepfer.inference.export` writes: uint8 faces in, probabilities
out (calibrated by the temperature the export baked in), label names, input size and temperature
in the metadata. The graph's input and output names are defined
here, where they are read; the exporter imports them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepfer.errors import ModelError

INPUT, OUTPUT = "faces", "probs"  # the graph's input (uint8 faces) and output (probabilities)
THREADS = 2


class OnnxClassifier:
    """Class probabilities of uint8 face crops from an exported ``.onnx`` model.

    Args:
        model: an ``.onnx`` file, or its bytes.
        batch_size: faces per run of the session.
        tta: average each face's probabilities with its mirror image's.
        threads: onnxruntime's intra-op threads.
        calibrated: ``False`` asks for the plain softmax, which only an export without a
            temperature (``deepfer export --uncalibrated``) gives.

    Raises:
        ModelError: onnxruntime is missing, the file is not a deepfer ONNX export, or
            ``calibrated=False`` for an export with a temperature baked in.
    """

    backend = "onnx"

    def __init__(self, model: bytes | str | Path, batch_size: int = 256, tta: bool = False,
                 threads: int = THREADS, calibrated: bool = True) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("the onnx backend needs onnxruntime: pip install -e '.[onnx]' in the deepfer "
                             "checkout") from None
        where = "ONNX model" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes):
            if not Path(model).is_file():
                raise ModelError(f"{model}: no such ONNX file")
            model = str(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Threads that spin while waiting steal the core a shared machine needs: measured on two
        # busy cores, 2 spinning threads gave 2,600 crops/s, 2 sleeping threads 3,300.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{where}: not a readable ONNX model ({' '.join(str(exc).split())[:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "deepfer.labels" not in meta:
            raise ModelError(f"{where}: not a deepfer ONNX export (no 'deepfer.labels' metadata); "
                             "make one with `deepfer export --format onnx`")
        self.labels: list[str] = json.loads(meta["deepfer.labels"])
        preprocess = json.loads(meta["deepfer.preprocess"])
        self.size = int(preprocess["size"])
        self.align = str(preprocess.get("align", "none"))  # Preprocess.align; absent: "none"
        # Exports older than calibration have no entry: their graph is the plain softmax.
        self.temperature = float(json.loads(meta.get("deepfer.calibration", "{}")).get("temperature", 1.0))
        if not calibrated and self.temperature != 1.0:
            raise ModelError(f"{where}: its probabilities are calibrated (temperature {self.temperature:g} is part of "
                             "the graph); for the plain softmax export it again with `deepfer export --uncalibrated`")
        self.batch_size = batch_size
        self.tta = tta

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, num_classes) float32 for uint8 faces (N, size, size); with ``tta``, as
        :func:`deepfer.models.predict.predict_proba` computes them (the views' plain probabilities
        averaged, then the temperature applied)."""
        faces = np.ascontiguousarray(faces, dtype=np.uint8)
        if faces.ndim != 3 or faces.shape[1:] != (self.size, self.size):
            raise ModelError(f"expected uint8 faces of shape (N, {self.size}, {self.size}), got {faces.shape}")
        out = []
        for start in range(0, len(faces), self.batch_size):
            batch = faces[start : start + self.batch_size]
            p = self.session.run(None, {INPUT: batch})[0]
            if self.tta:
                mirror = self.session.run(None, {INPUT: np.ascontiguousarray(batch[:, :, ::-1])})[0]
                p = 0.5 * (p + mirror) if self.temperature == 1.0 else self._temper_mean(p, mirror)
            out.append(p)
        if not out:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _temper_mean(self, *views: np.ndarray) -> np.ndarray:
        """The graph gives softmax(z / T) per view; softmax(T * log p) undoes the temperature (the
        plain softmax of z), the views are averaged in probability and the temperature applied to
        the mean, as torch's TTA does. float64 logs: a probability that underflowed to 0 stays 0."""
        t = self.temperature
        with np.errstate(divide="ignore"):
            plain = [_log_softmax(t * np.log(v.astype(np.float64))) for v in views]
        log_mean = np.logaddexp.reduce(np.stack(plain), axis=0) - np.log(len(views))
        return np.exp(_log_softmax(log_mean / t))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    top = x.max(1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(1, keepdims=True))
