"""The REST app: ``create_app(settings)`` builds a FastAPI application around one
:class:`~deepfer.serve.engine.Engine`, and :func:`run` serves it with uvicorn.

Endpoints: ``POST /v1/predict`` (an image -> the ``deepfer predict --format json`` record),
``POST /v1/explain`` (an image -> a heatmap PNG), ``GET /v1/models``, ``GET /healthz``, the web
page at ``/`` and the OpenAPI documentation at ``/docs`` (served from the package: no CDN);
``POST /v1/video`` and ``POST /v1/track`` (tracked faces) come from :mod:`deepfer.serve.video`.

Every error answers ``{"error": "..."}``: 400 bad image or request, 408 upload too slow, 413 upload
or image too large, 415 not an image, 503 busy, 504 timed out, 500 anything else (logged with its
traceback on the server, never sent to the client). An image without a face is a 200 with an empty
``faces`` list.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepfer.errors import DeepferError
from deepfer.serve.engine import Engine
from deepfer.serve.errors import public_message, status_for
from deepfer.serve.schemas import ErrorRecord, PredictRecord
from deepfer.serve.settings import ServeSettings
from deepfer.serve.uploads import FORMATS, receive_upload
from deepfer.serve.video import add_video_routes
from deepfer.version import __version__

log = logging.getLogger(__name__)

STATIC = Path(str(resources.files("deepfer.serve") / "static"))
# The page loads nothing but its own files; the documentation pages (Swagger UI, ReDoc) need
# inline scripts and keep FastAPI's defaults.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'none'")
_DOC_PREFIXES = ("/docs", "/redoc", "/static-offline-docs")
# Connections (and their tasks) uvicorn serves at once before it answers a plain-text 503.
LIMIT_CONCURRENCY = 768


_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "string", "format": "binary",
                                                    "description": f"an image file ({', '.join(FORMATS)})"}}},
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {400: "bad image or request", 408: "upload too slow", 413: "upload or image too large",
               415: "not a supported image", 500: "server error (logged)", 501: "not available for this model",
               503: "busy, retry", 504: "timed out"}
    return {c: {"model": ErrorRecord, "description": meaning[c]} for c in codes}


# -- the app ----------------------------------------------------------------------------------------

def create_app(settings: ServeSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application.

    Args:
        settings: limits, model and workers (:class:`ServeSettings` defaults when ``None``).
        engine: an engine already built for ``settings`` (tests share one); ``None`` builds it,
            loading the model now, so a bad model fails here rather than on the first request.

    Returns:
        The app; run it with :func:`run`, or ``uvicorn --factory deepfer.serve:create_app``.

    Raises:
        DeepferError: the model, backend or detector cannot be loaded.
    """
    settings = settings or ServeSettings()
    engine = engine or Engine(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.close()

    make_fastapi: Callable[..., FastAPI] = FastAPI
    try:
        from fastapi_offline import FastAPIOffline  # Swagger UI and ReDoc from the package

        make_fastapi = FastAPIOffline
    except ImportError:  # the page and the API work without it; /docs then needs a CDN
        log.warning("fastapi-offline is missing: /docs will load Swagger UI from a CDN")
    app = make_fastapi(title="deepfer", version=__version__, lifespan=lifespan,
                       description="Facial expression recognition: faces, boxes and class probabilities "
                       "of uploaded photos, heatmaps of what drives them, and a web page for photos and the "
                       "webcam. Errors answer {\"error\": \"...\"}.")
    app.state.settings = settings
    app.state.engine = engine

    _add_error_handlers(app)
    @app.post("/v1/predict", response_model=PredictRecord, openapi_extra=_IMAGE_BODY, tags=["inference"],
              responses=_errors(400, 408, 413, 415, 500, 503, 504))
    async def predict(request: Request) -> JSONResponse:
        """Faces, boxes and class probabilities of one image, in the shape of
        `deepfer predict --format json`. No face: 200 with an empty `faces` list."""
        upload = await receive_upload(request, settings)
        return JSONResponse(await engine.predict(upload))

    @app.post("/v1/explain", openapi_extra=_IMAGE_BODY, tags=["inference"], response_class=Response,
              responses={200: {"content": {"image/png": {}},
                               "description": "the heatmap PNG; X-Deepfer-Faces: faces found, "
                               "X-Deepfer-Labels: their predicted classes"},
                         **_errors(400, 408, 413, 415, 500, 501, 503, 504)})
    async def explain(request: Request,
                      method: str = Query(
                          "gradcam", pattern=r"^(gradcam|occlusion|saliency|gradcam:[\w-]+)$",
                          description="how the heatmap is made: gradcam, occlusion, saliency, or "
                          "gradcam:<branch> (one block's Grad-CAM) for a model with branches; /v1/models lists "
                          "them as explain_methods"),
                      mode: Literal["blend", "overlay"] = Query(
                          "blend", description="blend: the photo with the heatmap over its faces; overlay: "
                          "the heatmap alone on a transparent background, to lay over the photo")) -> Response:
        """A heatmap of the face regions that drive each face's prediction, as a PNG (its longest
        side at most `explain_max_side`, 1024 px by default)."""
        upload = await receive_upload(request, settings)
        png, labels = await engine.explain(upload, method, mode)
        return Response(png, media_type="image/png",
                        headers={"X-Deepfer-Faces": str(len(labels)), "X-Deepfer-Labels": ",".join(labels)})

    _add_service_routes(app, engine, settings)
    add_video_routes(app, engine, settings)  # POST /v1/video, POST /v1/track
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": "..."}``: deepfer's with their HTTP code (:func:`status_for`)."""

    @app.exception_handler(DeepferError)
    async def deepfer_error(request: Request, exc: DeepferError) -> JSONResponse:
        status = status_for(exc)
        if status in (503, 504):  # overload: worth an operator's eye, not a traceback
            log.warning("%s %s: %s %s", request.method, request.url.path, status, exc)
        elif status >= 500 and status != 501:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": public_message(exc)}, status, headers=getattr(exc, "headers", None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, 422)


def _add_service_routes(app: FastAPI, engine: Engine, settings: ServeSettings) -> None:
    """``GET /v1/models``, ``GET /healthz`` and the web page."""

    @app.get("/v1/models", tags=["service"])
    async def models() -> dict[str, Any]:
        """The loaded model, the shipped weights, the architectures and the server's limits."""
        from deepfer.models import list_models
        from deepfer.models.pretrained import list_pretrained

        shipped = [{"name": w.name, "architecture": w.architecture, "labels": w.labels,
                    "dataset": w.info.get("dataset"), "protocol": w.info.get("protocol"),
                    "val_accuracy": w.info.get("val_accuracy")} for w in list_pretrained()]
        return {"model": engine.describe(), "weights": shipped, "architectures": list_models(),
                "limits": settings.limits(), "formats": list(FORMATS)}

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: answers without touching the workers. `in_progress`: requests admitted plus work
        still running for requests answered 504; `running`: work in the worker threads now;
        `decoders`: decoder processes alive; `decoders_killed`: ended so far for overrunning a
        request's deadline (or crashing)."""
        return {"status": "ok", **engine.health()}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")


class Guard:
    """The outermost layer: security headers and a ``Server-Timing`` on every response, and any
    exception that escaped the handlers answered as a JSON 500 and logged with its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        t0 = time.perf_counter()
        docs = scope["path"].startswith(_DOC_PREFIXES)

        async def send_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"server-timing", f"app;dur={(time.perf_counter() - t0) * 1000:.1f}".encode())]
                if not docs:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_headers)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # the response is under way: all we can do is drop the connection
                raise
            response = JSONResponse({"error": "internal server error (logged on the server)"}, 500)
            await response(scope, receive, send_headers)


def run(settings: ServeSettings) -> None:
    """Serve the app with uvicorn (one process; the engine's threads give the parallelism).

    Raises:
        DeepferError: the model cannot be loaded.
    """
    import uvicorn

    if not settings.loopback:
        log.warning("listening on %s: the server is reachable from other machines, without authentication",
                    settings.host)
    app = create_app(settings)
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    # uvicorn's own INFO lines say where it listens; per-request access lines only with -v.
    from deepfer.serve.protocol import HeaderTimeoutProtocol

    # HeaderTimeoutProtocol: uvicorn has no deadline on request headers (benchmarks/FUZZ.md).
    # limit_concurrency: a last guard in front of the engine's own admission limit (which answers in
    # JSON), high enough that connections still sending their headers (5 s at most each) do not
    # reach it before the engine's limit does.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="debug" if verbose else "info",
                access_log=verbose, timeout_keep_alive=5, http=HeaderTimeoutProtocol,
                limit_concurrency=LIMIT_CONCURRENCY + settings.max_queue, server_header=False)
