"""The playground's web app: a Starlette ASGI app with one WebSocket per page.

Routes:

* ``GET /``: the page; ``GET /static/...``: its script and style (from this package);
* ``GET /vendor/plotly.min.js``: plotly's JavaScript, served from the installed ``plotly``
  package (no CDN: the page works with the network off);
* ``GET /api/fields``: every setting with its range and default;
* ``GET /api/messages/{lang}``: the page's words from the message catalogue;
* ``GET /api/lessons``: the lessons, in order (:mod:`leaky.playground.lessons`);
* ``GET /api/export?setting=value&...&steps=n``: the setup as a Python script
  (:mod:`leaky.playground.export_script`); bad settings get a 400 that names each one;
* ``WS /ws``: one session. The page sends commands (see :mod:`leaky.playground.worker`);
  the server sends views, errors, and a last message before it closes the socket
  (``refused`` for one session too many, ``closed`` when reclaimed after being idle).

Training runs in a worker thread per session, never on the event loop. At most
``max_sessions`` sessions at once (a closed page's session counts until its thread has
stopped); a session with no command for ``idle_timeout`` seconds is reclaimed. The page
reads nothing from the file system but the package's own files.

Only requests addressed to this machine by name are answered: ``Host`` must be localhost,
127.0.0.1, [::1] or one of ``allowed_hosts``, and a WebSocket's ``Origin`` must be the page's
own. Another web site whose name resolves to 127.0.0.1 (DNS rebinding) is refused.

Commands are JSON text of at most :data:`MAX_MESSAGE_BYTES`; what JSON or Python cannot
hold (NaN, 1e999, integers of thousands of digits, deep nesting) is answered with an error,
binary data and larger messages with an error and a close (1003, 1009).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from leaky.core.spec import SPECS
from leaky.messages import LANGUAGES, get_messages
from leaky.playground.export_script import DEFAULT_STEPS, export_script
from leaky.playground.lessons import LESSONS
from leaky.playground.params import (
    FIELDS,
    MAX_PARAMETERS,
    PlaygroundParams,
    read_text_values,
    validate_params,
)
from leaky.playground.worker import SessionWorker
from leaky.system.errors import MissingExtraError

__all__ = [
    "LOOPBACK_NAMES",
    "MAX_DIGITS",
    "MAX_MESSAGE_BYTES",
    "create_app",
    "plotly_js_path",
    "read_command",
]

STATIC = Path(__file__).parent / "static"
# The largest message the page sends is a `params` command with every setting, about 400
# bytes (a little more with long values copied from the page's URL): 16 KiB is forty times
# that, and small enough that nothing a page sends can tie up the server.
MAX_MESSAGE_BYTES = 16 * 1024
MAX_DIGITS = 100  # of an integer in a command; the largest setting (seed) has 10
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")  # ::1 is written [::1] in a Host header
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


def _refuse_constant(name: str) -> float:
    raise ValueError(f"Expected finite numbers in a command, but got {name}.")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 and its kin read as infinity
        shown = literal if len(literal) <= 40 else literal[:37] + "..."
        raise ValueError(f"Expected finite numbers in a command, but got {shown}.")
    return value


def _bounded_int(literal: str) -> int:
    # Python refuses to read integers of over 4,300 digits with a message about
    # sys.set_int_max_str_digits; no setting needs more than a few digits.
    digits = len(literal.lstrip("-"))
    if digits > MAX_DIGITS:
        raise ValueError(
            f"Expected integers of at most {MAX_DIGITS} digits in a command, "
            f"but got one of {digits} digits."
        )
    return int(literal)


def read_command(text: str) -> Any:
    """Read one command from the page's JSON text.

    Strict JSON only: Python's reader also takes NaN, Infinity and 1e999 (read as
    infinity), which no reply could echo back; they are refused here, as are integers of
    more than :data:`MAX_DIGITS` digits and nesting too deep to read.

    Raises:
        ValueError: the text is not a command JSON can hold (the message says why).

    Examples:
        >>> read_command('{"type": "step", "steps": 2}')
        {'type': 'step', 'steps': 2}
        >>> read_command('{"type": "params", "params": {"depth": NaN}}')
        Traceback (most recent call last):
        ...
        ValueError: Expected finite numbers in a command, but got NaN.
    """
    try:
        return json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as error:
        raise ValueError(f"Expected a JSON command: {error}") from None
    except RecursionError:
        raise ValueError(
            "Expected a JSON command of a few levels, but got one nested too deeply to read."
        ) from None


def _encode(message: dict[str, Any]) -> str:
    try:
        return json.dumps(message, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        # A reply JSON cannot hold must not end the session without a word: the page
        # hears what went wrong, and the session goes on.
        return json.dumps(
            {
                "type": "error",
                "message": f"The server could not send its {str(message.get('type'))[:40]!r} "
                f"reply ({type(error).__name__}: {str(error)[:200]}). This is a bug in leaky; "
                "the session goes on.",
            }
        )


async def _send_loop(websocket: WebSocket, outbox: _Outbox) -> None:
    while True:
        await websocket.send_text(_encode(await outbox.get()))


async def _last_words(
    websocket: WebSocket, sender: asyncio.Task[None], message: dict[str, Any], code: int
) -> None:
    """Send one last message, then close with ``code``."""
    sender.cancel()  # one writer at a time: the sender stops first
    # A sender that failed did so on a closed socket: the send below says so in turn.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await sender
    await websocket.send_text(_encode(message))
    await websocket.close(code=code)


def _hostname(value: str) -> str | None:
    """``Host: example.org:80`` -> ``example.org``, ``[::1]:80`` -> ``::1``; None if malformed."""
    try:
        parts = urlsplit("//" + value)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return None
    if parts.netloc != value or "@" in value or not parts.hostname:
        return None
    return parts.hostname.lower()


class _AllowedHosts:
    """ASGI middleware: answer only requests that name this machine by an allowed name.

    A web site can make its own name resolve to 127.0.0.1 (DNS rebinding), after which
    the browser treats this server as that site's own and lets its pages read it. Those
    requests still carry the site's name in ``Host``, and a WebSocket's ``Origin`` names the
    page that opened it: both are checked here, as local development servers do. An IP
    address cannot be rebound, so with ``any_ip`` (the server listens on every address of
    the machine, which cannot all be listed) any IP address is accepted.
    """

    def __init__(self, app: ASGIApp, names: frozenset[str], any_ip: bool) -> None:
        self.app, self.names, self.any_ip = app, names, any_ip

    def _allowed(self, host: str | None) -> bool:
        name = None if host is None else _hostname(host)
        if name is None:
            return False
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if scope["type"] == "websocket":
            if self._allowed(host) and _same_origin(headers.get("origin"), host):
                await self.app(scope, receive, send)
            else:  # closed before it is accepted: the browser sees the upgrade refused
                await send({"type": "websocket.close", "code": 1008, "reason": ""})
        elif self._allowed(host):
            await self.app(scope, receive, send)
        else:
            names = list(LOOPBACK_NAMES) + sorted(self.names - set(LOOPBACK_NAMES))
            shown = [f"[{name}]" if ":" in name else name for name in names]
            problem = (
                f"Expected a Host of {', '.join(shown[:-1])} or {shown[-1]}, but got {host!r}: "
                "the playground answers only "
                "to the names it was started with. Open it at the address it printed."
            )
            await PlainTextResponse(problem, status_code=400)(scope, receive, send)


def _same_origin(origin: str | None, host: str | None) -> bool:
    # Browsers let any web site open a WebSocket to 127.0.0.1: only this page's own
    # origin may start a session (clients without an Origin header are not browsers).
    if origin is None:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # not a URL at all
        return False
    return host is not None and netloc.lower() == host.lower()


def create_app(
    *,
    max_sessions: int = 4,
    idle_timeout: float = 600.0,
    update_interval: float = 0.2,
    allowed_hosts: Iterable[str] = (),
) -> Starlette:
    """Build the ASGI app.

    Args:
        max_sessions: pages served at once; one more gets a ``refused`` message.
            Default: 4
        idle_timeout: seconds without a command from a page before its session is
            reclaimed. Default: 600
        update_interval: seconds of training between two views. Default: 0.2
        allowed_hosts: names the page may be reached by besides localhost, 127.0.0.1
            and [::1]: the address the server listens on. An unspecified address
            (``0.0.0.0``, ``::``) accepts any IP address of the machine. Default: ``()``

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings():  # starlette would rather test over httpx2
        ...     warnings.simplefilter("ignore")
        ...     from starlette.testclient import TestClient
        >>> with TestClient(create_app(), base_url="http://127.0.0.1:8765") as client:
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
    if isinstance(allowed_hosts, str):
        allowed_hosts = (allowed_hosts,)
    names = set(LOOPBACK_NAMES)
    for host in allowed_hosts:
        name = host.strip("[]").lower() if isinstance(host, str) else ""
        if not name or _hostname(f"[{name}]" if ":" in name else name) is None:
            raise ValueError(f"Expected `allowed_hosts` to hold host names, but got {host!r}")
        names.add(name)
    any_ip = bool(names & {"0.0.0.0", "::"})
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

    async def lessons(request: Request) -> Response:
        return JSONResponse({"lessons": [lesson.to_dict() for lesson in LESSONS]}, headers=_HEADERS)

    async def export(request: Request) -> Response:
        texts = dict(request.query_params)
        steps_text = texts.pop("steps", str(DEFAULT_STEPS))
        digits = steps_text.isascii() and steps_text.isdigit() and len(steps_text) <= 9
        steps = int(steps_text) if digits else None
        params, errors = validate_params(read_text_values(texts))
        problems = [error.message for error in errors.values()]
        if steps is None:
            problems.append(f"Expected `steps` to be an integer >= 0, but got {steps_text!r}.")
        if problems:
            return JSONResponse({"error": " ".join(problems)}, status_code=400, headers=_HEADERS)
        script = export_script(params, steps=steps or DEFAULT_STEPS)
        headers = {
            **_HEADERS,
            "Content-Disposition": 'attachment; filename="leaky_playground.py"',
        }
        return Response(script, media_type="text/x-python; charset=utf-8", headers=headers)

    def serving() -> int:
        # A closed page's session counts until its thread has stopped: the limit is on
        # training threads, not on open sockets.
        return len(workers | {worker for worker in started if worker.is_alive()})

    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        if serving() >= max_sessions:
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
                    message = await asyncio.wait_for(websocket.receive(), idle_timeout)
                except TimeoutError:
                    closed = {
                        "type": "closed",
                        "reason": "idle",
                        "idle_timeout": idle_timeout,
                        "message": f"This session was idle for {idle_timeout:g} s and was "
                        "closed to free the CPU; reload the page to start again.",
                    }
                    await _last_words(websocket, sender, closed, 1000)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    error = "Expected text messages holding JSON commands, but got binary data."
                    await _last_words(websocket, sender, {"type": "error", "message": error}, 1003)
                    return
                size = len(text.encode("utf-8", "surrogatepass"))
                if size > MAX_MESSAGE_BYTES:
                    error = (
                        f"Expected a command of at most {MAX_MESSAGE_BYTES:,} bytes, "
                        f"but got {size:,} bytes."
                    )
                    await _last_words(websocket, sender, {"type": "error", "message": error}, 1009)
                    return
                try:
                    command = read_command(text)
                except ValueError as error:
                    outbox.put({"type": "error", "message": str(error)})
                    continue
                worker.send(command)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            worker.stop()  # cancels the training it is in and any commands still queued
            workers.discard(worker)
            # Off the event loop: the worker stops after the training step it is taking.
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
            Route("/api/lessons", lessons),
            Route("/api/export", export),
            WebSocketRoute("/ws", session),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(_AllowedHosts, names=frozenset(names), any_ip=any_ip)],
    )
    app.state.workers = workers
    return app
