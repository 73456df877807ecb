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
MAX_INPUT_SIZE = 512  # face side in pixels; the shipped models take 48 to 112
MAX_CLASSES = 1000
# Largest tensor the graph may make for one face, known from its shapes before onnxruntime loads
# it: far above the shipped architectures' (tests/inference/test_onnx_architectures.py loads each),
# far below the 858 MiB of benchmarks/fuzz.py --hostile's 538-byte graph.
MAX_TENSOR_BYTES = 100 * 1024 * 1024


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
        ModelError: onnxruntime is missing, the file is not a deepfer ONNX export, its graph does
            not take uint8 faces (N, size, size) or give float (N, classes), it makes a tensor over
            :data:`MAX_TENSOR_BYTES` for one face (from its shapes, before it runs), its answer for
            a blank face is not probabilities, or ``calibrated=False`` for an export with a
            temperature baked in. Outputs that are not probabilities are refused, never softmaxed
            (every run checks them): a deepfer export ends in its softmax.
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
        _check_tensor_sizes(model, where)  # before onnxruntime folds constants (up to 1 GiB each)
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
        try:
            self.labels: list[str] = json.loads(meta["deepfer.labels"])
            preprocess = json.loads(meta["deepfer.preprocess"])
            self.size = int(preprocess["size"])
            self.align = str(preprocess.get("align", "none"))  # Preprocess.align; absent: "none"
            # Exports older than calibration have no entry: their graph is the plain softmax.
            self.temperature = float(json.loads(meta.get("deepfer.calibration", "{}")).get("temperature", 1.0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{where}: malformed deepfer metadata ({type(exc).__name__}: {str(exc)[:80]})") from None
        if (not isinstance(self.labels, list) or not 2 <= len(self.labels) <= MAX_CLASSES
                or not all(isinstance(x, str) for x in self.labels)):
            raise ModelError(f"{where}: metadata 'deepfer.labels' must be a list of 2 to {MAX_CLASSES} names")
        if not 1 <= self.size <= MAX_INPUT_SIZE or not 0 < self.temperature < float("inf"):
            raise ModelError(f"{where}: metadata input size {self.size} (1..{MAX_INPUT_SIZE}) or temperature "
                             f"{self.temperature:g} (> 0) out of range")
        self._check_signature(where)
        if not calibrated and self.temperature != 1.0:
            raise ModelError(f"{where}: its probabilities are calibrated (temperature {self.temperature:g} is part of "
                             "the graph); for the plain softmax export it again with `deepfer export --uncalibrated`")
        self.batch_size = batch_size
        self.tta = tta
        self._where = where
        # One face through the graph: its answer must be one probability per label.
        self._run(np.zeros((1, self.size, self.size), np.uint8))

    def _check_signature(self, where: str) -> None:
        """The graph's input is uint8 faces (N, size, size) and its output float (N, classes)."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != INPUT:
            raise ModelError(f"{where}: the graph must take one input named {INPUT!r}, got "
                             f"{', '.join(repr(i.name[:40]) for i in inputs[:4]) or 'none'}")
        shape = list(inputs[0].shape)
        if inputs[0].type != "tensor(uint8)" or len(shape) != 3 or shape[1:] != [self.size, self.size]:
            raise ModelError(f"{where}: input {INPUT!r} must be uint8 faces (N, {self.size}, {self.size}), got "
                             f"{inputs[0].type} {shape}"[:300])
        if not outputs:
            raise ModelError(f"{where}: the graph has no output")
        out = outputs[0]
        classes = out.shape[1] if len(out.shape) == 2 else None
        if out.type != "tensor(float)" or len(out.shape) != 2 or (isinstance(classes, int) and classes != len(self.labels)):
            raise ModelError(f"{where}: output must be float probabilities (N, {len(self.labels)}), got "
                             f"{out.type} {list(out.shape)}"[:300])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The graph's output for a batch, checked: (N, classes) probabilities (finite, in [0, 1],
        summing to 1). A deepfer export ends in a softmax; a graph whose outputs are not
        probabilities is refused, not softmaxed, so a score is never a guess at what it meant."""
        try:
            p = self.session.run(None, {INPUT: batch})[0]
        except Exception as exc:  # onnxruntime's own types: a graph that fails on valid faces
            raise ModelError(f"{self._where}: the graph fails on {batch.shape[0]} face(s) "
                             f"({' '.join(str(exc).split())[:200]})") from None
        p = np.asarray(p)
        if p.shape != (len(batch), len(self.labels)) or not np.issubdtype(p.dtype, np.floating):
            raise ModelError(f"{self._where}: the graph answered {p.dtype} {p.shape} for {len(batch)} face(s); "
                             f"expected probabilities ({len(batch)}, {len(self.labels)})")
        if not (np.isfinite(p).all() and p.min(initial=0.0) >= 0.0 and p.max(initial=0.0) <= 1.0
                and np.allclose(p.sum(1), 1.0, atol=1e-3)):
            sums = p.sum(1)
            raise ModelError(f"{self._where}: the graph's outputs are not probabilities (values "
                             f"{float(np.nanmin(p)):.3g} to {float(np.nanmax(p)):.3g}, rows summing to "
                             f"{float(np.nanmin(sums)):.3g} to {float(np.nanmax(sums)):.3g})")
        return p

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
            p = self._run(batch)
            if self.tta:
                mirror = self._run(np.ascontiguousarray(batch[:, :, ::-1]))
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


def _check_tensor_sizes(model: bytes | str, where: str) -> None:
    """Refuse a graph that makes a tensor larger than :data:`MAX_TENSOR_BYTES` for one face, from
    ONNX shape inference (with constants propagated) at batch 1, before any of it runs.

    Shapes that inference cannot resolve are not refused here; what they allocate is the
    graph's to answer for at run time (the shipped architectures resolve all but a few pads).
    Without the ``onnx`` package the check is skipped.
    """
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return
    try:
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model, load_external_data=False)
        graph = proto.graph
        for value in graph.input:
            dims = value.type.tensor_type.shape.dim
            if dims and not dims[0].HasField("dim_value"):
                dims[0].Clear()
                dims[0].dim_value = 1
        inferred = shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True).graph
    except Exception:  # noqa: BLE001 - onnxruntime reads the file next and reports what is wrong with it
        return
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}  # bytes per element
    for value in [*inferred.value_info, *inferred.output, *graph.initializer]:
        if isinstance(value, onnx.TensorProto):
            dims, elem = list(value.dims), value.data_type
        else:
            t = value.type.tensor_type
            if not t.HasField("shape") or not all(d.HasField("dim_value") for d in t.shape.dim):
                continue
            dims, elem = [d.dim_value for d in t.shape.dim], t.elem_type
        n = 1
        for d in dims:
            n *= max(int(d), 0)
        nbytes = n * sizes.get(elem, 8)
        if nbytes > MAX_TENSOR_BYTES:
            raise ModelError(f"{where}: the graph makes a tensor of {nbytes / 2**20:,.0f} MiB for one face "
                             f"({str(value.name)[:40]!r}, shape {dims[:6]}); the limit is "
                             f"{MAX_TENSOR_BYTES // 2**20} MiB")
