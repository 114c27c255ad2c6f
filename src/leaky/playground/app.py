"""The playground's web app: a Starlette ASGI app with one WebSocket per page.

Routes:

* ``GET /``: the page; ``GET /static/...``: its script and style (from this package);
* ``GET /vendor/plotly.min.js``: plotly's JavaScript, served from the installed ``plotly``
  package (no CDN: the page works with the network off);
* ``GET /api/fields``: every setting with its range and default;
* ``GET /api/messages/{lang}``: the page's words from the message catalogue;
* ``WS /ws``: one session. The page sends commands (see :mod:`leaky.playground.worker`);
  the server sends views, errors, and a last message before it closes the socket
  (``refused`` for one session too many, ``closed`` when reclaimed after being idle).

Training runs in a worker thread per session, never on the event loop. At most
``max_sessions`` sessions at once; a session with no command for ``idle_timeout`` seconds
is reclaimed. The page reads nothing from the file system but the package's own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from leaky.core.spec import SPECS
from leaky.messages import LANGUAGES, get_messages
from leaky.playground.params import FIELDS, MAX_PARAMETERS, PlaygroundParams
from leaky.playground.worker import SessionWorker
from leaky.system.errors import MissingExtraError

__all__ = ["create_app", "plotly_js_path"]

STATIC = Path(__file__).parent / "static"
_HEADERS = {
    # Everything the page loads comes from this server; plotly needs inline styles.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-eval'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def plotly_js_path() -> Path:
    """The plotly.js bundle that ships inside the installed ``plotly`` package."""
    try:
        import plotly
    except ImportError:
        raise MissingExtraError(
            "The playground draws with plotly: pip install 'leaky[playground]'"
        ) from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly's JavaScript is missing from the package: {path}")
    return path


class _Outbox:
    """Messages for one page: every error and reply in order, views latest-only.

    A page that reads slowly sees the newest view and skips the ones in between, so the
    server never queues views it cannot deliver.
    """

    def __init__(self) -> None:
        self.messages: deque[dict[str, Any]] = deque(maxlen=64)
        self.update: dict[str, Any] | None = None
        self.ready = asyncio.Event()

    def put(self, message: dict[str, Any]) -> None:
        if message.get("type") == "update":
            self.update = message
        else:
            self.messages.append(message)
        self.ready.set()

    async def get(self) -> dict[str, Any]:
        while True:
            if self.messages:
                return self.messages.popleft()
            if self.update is not None:
                message, self.update = self.update, None
                return message
            self.ready.clear()
            await self.ready.wait()


def _same_origin(websocket: WebSocket) -> bool:
    # Browsers let any web site open a WebSocket to 127.0.0.1: only this page's own
    # origin may start a session (clients without an Origin header are not browsers).
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


async def _send_loop(websocket: WebSocket, outbox: _Outbox) -> None:
    while True:
        await websocket.send_text(json.dumps(await outbox.get(), allow_nan=False))


def create_app(
    *, max_sessions: int = 4, idle_timeout: float = 600.0, update_interval: float = 0.2
) -> Starlette:
    """Build the ASGI app.

    Args:
        max_sessions: pages served at once; one more gets a ``refused`` message.
            Default: 4
        idle_timeout: seconds without a command from a page before its session is
            reclaimed. Default: 600
        update_interval: seconds of training between two views. Default: 0.2

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings():  # starlette would rather test over httpx2
        ...     warnings.simplefilter("ignore")
        ...     from starlette.testclient import TestClient
        >>> with TestClient(create_app()) as client:
        ...     client.get("/api/fields").json()["fields"]["depth"]["high"]
        50
    """
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ValueError(f"Expected `max_sessions` to be an integer >= 1, but got {max_sessions!r}")
    if not idle_timeout > 0 or not update_interval > 0:
        raise ValueError(
            "Expected `idle_timeout` and `update_interval` to be > 0 seconds, but got "
            f"{idle_timeout!r} and {update_interval!r}"
        )
    plotly_js = plotly_js_path()
    workers: set[SessionWorker] = set()  # the sessions being served
    started: list[SessionWorker] = []  # threads that may still be running

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_HEADERS)

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js, media_type="text/javascript", headers=_HEADERS)

    async def fields(request: Request) -> Response:
        return JSONResponse(
            {
                "fields": {name: asdict(spec) for name, spec in FIELDS.items()},
                "defaults": PlaygroundParams().to_dict(),
                "max_parameters": MAX_PARAMETERS,
                "titles": {spec.name: spec.title for spec in SPECS},
                "languages": list(LANGUAGES),
            },
            headers=_HEADERS,
        )

    async def messages(request: Request) -> Response:
        lang = request.path_params["lang"]
        if lang not in LANGUAGES:
            return JSONResponse(
                {"error": f"Expected a language in {', '.join(LANGUAGES)}, but got {lang!r}"},
                status_code=404,
            )
        entries = get_messages(lang).entries
        words = {
            key.split(".", 1)[1]: text
            for key, text in entries.items()
            if key.startswith("playground.")
        }
        return JSONResponse({"lang": lang, "messages": words}, headers=_HEADERS)

    async def session(websocket: WebSocket) -> None:
        if not _same_origin(websocket):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        if len(workers) >= max_sessions:
            await websocket.send_json(
                {
                    "type": "refused",
                    "message": f"The playground already serves {max_sessions} pages at once, "
                    "its limit; close one of them and reload this page.",
                    "max_sessions": max_sessions,
                }
            )
            await websocket.close(code=1013)  # try again later
            return
        loop = asyncio.get_running_loop()
        outbox = _Outbox()
        worker = SessionWorker(
            lambda message: loop.call_soon_threadsafe(outbox.put, message),
            update_interval=update_interval,
        )
        workers.add(worker)
        started[:] = [w for w in started if w.is_alive()] + [worker]
        worker.start()
        sender = asyncio.create_task(_send_loop(websocket, outbox))
        try:
            while True:
                try:
                    text = await asyncio.wait_for(websocket.receive_text(), idle_timeout)
                except TimeoutError:
                    sender.cancel()  # one writer at a time: the sender stops first
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender
                    await websocket.send_json(
                        {
                            "type": "closed",
                            "reason": "idle",
                            "idle_timeout": idle_timeout,
                            "message": f"This session was idle for {idle_timeout:g} s and was "
                            "closed to free the CPU; reload the page to start again.",
                        }
                    )
                    await websocket.close(code=1000)
                    return
                try:
                    command = json.loads(text)
                except json.JSONDecodeError as error:
                    outbox.put({"type": "error", "message": f"Expected a JSON command: {error}"})
                    continue
                worker.send(command)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            worker.stop()
            workers.discard(worker)
            # Off the event loop: the worker finishes the slice of training it is in.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.to_thread(worker.join, 60)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # No torch work may be left running in a thread when the interpreter exits.
        for worker in started:
            worker.stop()
        for worker in started:
            worker.join(60)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/vendor/plotly.min.js", plotly),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/api/fields", fields),
            Route("/api/messages/{lang}", messages),
            WebSocketRoute("/ws", session),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.workers = workers
    return app
