"""Serve the playground with uvicorn on this machine (``leaky playground``)."""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import threading
import webbrowser

from leaky.system.errors import MissingExtraError, ParameterError

__all__ = ["check_can_serve", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    Examples:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_can_serve(host: str, port: int) -> None:
    """Check before starting that the playground's packages are here and ``host:port`` is free.

    Raises:
        MissingExtraError: starlette, uvicorn or plotly is not installed.
        ParameterError: nothing can listen on ``host:port`` (in use, or not an address
            of this machine).
    """
    for package in ("starlette", "uvicorn", "plotly"):
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError(
                f"The playground needs {package}: pip install 'leaky[playground]'"
            )
    try:  # a clear message now rather than uvicorn's log line later
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As uvicorn binds: a port in TIME_WAIT after the last stop is free to it.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise ParameterError(
            f"Cannot listen on {host}:{port} ({error.strerror or error}); "
            "choose another {port} or {host}",
            "port",
            "host",
        ) from None


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    open_browser: bool = True,
    max_sessions: int = 4,
    idle_timeout: float = 600.0,
    on_ready: object = None,
) -> None:
    """Run the playground until Ctrl-C.

    torch's thread count is set to 1 for the whole process (``torch.set_num_threads`` is
    process-wide): each session trains in its own thread on one core, so a few pages at
    once share the machine instead of fighting over it.

    Args:
        host: address to bind; anything but loopback lets other machines use this CPU.
            Default: ``"127.0.0.1"``
        port: TCP port (0: any free one). Default: 8765
        open_browser: open the page in the default browser once the server listens.
            Default: ``True``
        max_sessions: pages served at once. Default: 4
        idle_timeout: seconds without a command before a page's session is reclaimed.
            Default: 600
        on_ready: called with the page's URL once the server listens. Default: None
    """
    import torch
    import uvicorn

    from leaky.playground.app import MAX_MESSAGE_BYTES, create_app

    torch.set_num_threads(1)
    # The page answers to the name it is served at (and loopback names), nothing else.
    app = create_app(max_sessions=max_sessions, idle_timeout=idle_timeout, allowed_hosts=(host,))
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", ws_max_size=MAX_MESSAGE_BYTES
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        if callable(on_ready):
            on_ready(url)
        if open_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, name="leaky-playground-announce", daemon=True).start()
    server.run()
