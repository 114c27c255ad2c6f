"""The playground's web app through Starlette's test client, and the `leaky playground` command."""

import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError

import pytest
from click.testing import CliRunner
from starlette.exceptions import StarletteDeprecationWarning
from starlette.websockets import WebSocketDisconnect

from leaky.app.cli import cli
from leaky.playground import app as app_module
from leaky.playground.app import create_app, plotly_js_path
from leaky.playground.session import TrainingSession

with warnings.catch_warnings():  # starlette prefers httpx2 for its test client; not ours to change
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SMALL = {"depth": 2, "width": 8}
# The test client ignores its base URL for WebSockets: this one sends a loopback Host.
WS = "ws://127.0.0.1/ws"


def _receive(ws, timeout=20.0):
    """The next message; an AssertionError after ``timeout`` seconds, so a test never hangs."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(ws.receive_json).result(timeout)
    except FutureTimeoutError:
        raise AssertionError(f"no message within {timeout:g} s") from None
    finally:
        pool.shutdown(wait=False)


def _next(ws, kind, limit=400, timeout=20.0):
    """The next message of ``kind`` (a bounded number of messages is read)."""
    for _ in range(limit):
        message = _receive(ws, timeout)
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind!r} message in {limit}")


@pytest.fixture
def client():
    with TestClient(create_app(max_sessions=2), base_url="http://127.0.0.1") as client:
        yield client


def test_page_plotly_and_messages_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/vendor/plotly.min.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/vendor/plotly.min.js").content == plotly_js_path().read_bytes()
    assert client.get("/static/playground.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    ja = client.get("/api/messages/ja").json()["messages"]
    assert ja["play"] == "再生" and "errors.range" in ja
    assert client.get("/api/messages/fr").status_code == 404
    fields = client.get("/api/fields").json()
    assert (
        fields["fields"]["learning_rate"]["log"] and fields["titles"]["leaky_relu"] == "Leaky ReLU"
    )


def test_a_session_streams_pauses_steps_and_takes_a_new_setting(client):
    with client.websocket_connect(WS) as ws:
        assert _next(ws, "update")["step"] == 0
        ws.send_json({"type": "params", "params": SMALL})
        assert _next(ws, "accepted")["params"]["depth"] == 2
        ws.send_json({"type": "play"})
        steps = [_next(ws, "update")["step"] for _ in range(3)]
        assert steps[-1] > 0 and steps == sorted(steps)
        ws.send_json({"type": "pause"})
        paused = _next(ws, "update")
        while paused["running"]:
            paused = _next(ws, "update")
        ws.send_json({"type": "step", "steps": 2})
        stepped = _next(ws, "update")
        assert stepped["step"] == paused["step"] + 2 and not stepped["running"]
        ws.send_json({"type": "params", "params": {"depth": 3, "learning_rate": 0.001}})
        _next(ws, "accepted")
        view = _next(ws, "update")
        assert view["step"] == 0 and len(view["networks"][0]["dead"]) == 3


def test_bad_commands_get_clear_errors_and_the_session_keeps_running(client):
    with client.websocket_connect(WS) as ws:
        _next(ws, "update")
        ws.send_json({"type": "params", "params": {"depth": "deep", "width": 1000, "x": 1}})
        errors = _next(ws, "errors")["errors"]
        assert errors["depth"]["code"] == "type" and errors["width"]["code"] == "range"
        assert errors["x"]["code"] == "unknown"
        assert errors["width"]["message"] == (
            "Expected `width` to be an integer from 2 to 256, but got 1000."
        )
        ws.send_text("{not json")
        assert "JSON" in _next(ws, "error")["message"]
        ws.send_json({"type": "fly"})
        assert "play, pause, step or reset" in _next(ws, "error")["message"]
        ws.send_json({"type": "step", "steps": 10**6})
        assert "`steps`" in _next(ws, "error")["message"]
        ws.send_json({"type": "step"})
        assert _next(ws, "update")["step"] == 1


def test_two_sessions_do_not_mix_and_a_third_is_refused(client):
    with client.websocket_connect(WS) as first, client.websocket_connect(WS) as second:
        _next(first, "update")
        _next(second, "update")
        first.send_json({"type": "params", "params": {"depth": 2, "width": 4}})
        second.send_json({"type": "params", "params": {"depth": 3, "width": 6}})
        first.send_json({"type": "step", "steps": 3})
        a = _next(first, "update")
        while a["step"] != 3:
            a = _next(first, "update")
        b = _next(second, "update")
        assert len(a["networks"][0]["firing"]) == 2 and len(a["networks"][0]["firing"][0]) == 4
        assert len(b["networks"][0]["firing"]) == 3 and b["step"] == 0
        with client.websocket_connect(WS) as third:
            refused = third.receive_json()
            assert refused["type"] == "refused" and "2 pages at once" in refused["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                third.receive_json()
            assert closed.value.code == 1013
    assert not client.app.state.workers


def test_idle_sessions_are_reclaimed_and_other_origins_refused():
    with TestClient(create_app(idle_timeout=0.5), base_url="http://127.0.0.1") as client:
        with client.websocket_connect(WS) as ws:
            closed = _next(ws, "closed")
            assert closed["reason"] == "idle" and "reload" in closed["message"]
        assert not client.app.state.workers
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(WS, headers={"origin": "http://evil.example"}) as ws,
        ):
            ws.receive_json()
        assert refused.value.code == 1008


def test_create_app_refuses_bad_limits():
    with pytest.raises(ValueError, match="max_sessions"):
        create_app(max_sessions=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        create_app(idle_timeout=0)
    with pytest.raises(ValueError, match="Expected `allowed_hosts` to hold host names"):
        create_app(allowed_hosts=["evil.example/path"])


# ------------------------------------------------------------------ what JSON cannot hold


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_and_the_session_keeps_answering(client, number):
    with client.websocket_connect(WS) as ws:
        _next(ws, "update")
        ws.send_text('{"type": "params", "params": {"depth": ' + number + "}}")
        error = _next(ws, "error")
        assert error["message"] == f"Expected finite numbers in a command, but got {number}."
        ws.send_json({"type": "bogus"})
        assert "play, pause, step or reset" in _next(ws, "error")["message"]


def test_a_reply_that_cannot_be_encoded_is_reported_and_the_session_goes_on(client, monkeypatch):
    monkeypatch.setattr(TrainingSession, "snapshot", lambda self: {"step": math.nan})
    with client.websocket_connect(WS) as ws:
        error = _next(ws, "error")
        assert "'update' reply" in error["message"] and "bug" in error["message"]
        ws.send_json({"type": "bogus"})
        assert "play, pause, step or reset" in _next(ws, "error")["message"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"type": "step", "steps": ' + "9" * 5000 + "}", "but got one of 5000 digits"),
        ('{"type": "step", "steps": ' + "9" * 5000 + ".5}", "but got 99999"),
    ],
)
def test_commands_python_cannot_read_get_an_error_and_the_session_goes_on(client, text, expected):
    with client.websocket_connect(WS) as ws:
        _next(ws, "update")
        ws.send_text(text)
        assert expected in _next(ws, "error")["message"]
        ws.send_json({"type": "step"})
        assert _next(ws, "update")["step"] == 1


def test_binary_frames_and_oversized_messages_are_answered_then_closed(client):
    with client.websocket_connect(WS) as ws:
        _next(ws, "update")
        ws.send_bytes(b'{"type": "play"}')
        assert "but got binary data" in _next(ws, "error")["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
        assert closed.value.code == 1003  # unsupported data
    with client.websocket_connect(WS) as ws:
        _next(ws, "update")
        ws.send_text("[" * 100_000 + "]" * 100_000)
        assert "but got 200,000 bytes" in _next(ws, "error")["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive(ws)
        assert closed.value.code == 1009  # message too big
    assert not client.app.state.workers


# ------------------------------------------------------------------ commands that pile up


def test_a_full_command_queue_refuses_more_with_an_error(client):
    with client.websocket_connect(WS) as ws:
        _next(ws, "update")
        ws.send_json({"type": "params", "params": SMALL})
        _next(ws, "accepted")
        for _ in range(60):  # each one trains for about half a second
            ws.send_json({"type": "step", "steps": 1000})
        busy = _next(ws, "error", timeout=5)
        assert busy["code"] == "busy" and busy["max_commands"] < 60
        assert busy["message"].startswith(f"Expected at most {busy['max_commands']} commands")


def test_closing_the_page_cancels_its_queued_training_and_frees_its_slot():
    with TestClient(create_app(max_sessions=1), base_url="http://127.0.0.1") as client:
        with client.websocket_connect(WS) as ws:
            _next(ws, "update")
            ws.send_json({"type": "params", "params": SMALL})
            _next(ws, "accepted")
            for _ in range(20):  # about ten seconds of training
                ws.send_json({"type": "step", "steps": 1000})
            (worker,) = client.app.state.workers
            time.sleep(0.2)  # the first command is under way
        worker.join(3)
        assert not worker.is_alive(), "the session trained on after its page closed"
        assert worker.session.step < 2000
        with client.websocket_connect(WS) as ws:
            assert _next(ws, "update")["step"] == 0  # served, not refused


# ------------------------------------------------------------------ DNS rebinding


def test_only_loopback_names_and_the_served_host_are_answered():
    app = create_app()
    with TestClient(app, base_url="http://evil.example:8765") as evil:
        refused = evil.get("/api/fields")
        assert refused.status_code == 400
        assert refused.text.startswith(
            "Expected a Host of localhost, 127.0.0.1 or [::1], but got 'evil.example:8765'"
        )
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            evil.websocket_connect(
                "ws://evil.example:8765/ws", headers={"origin": "http://evil.example:8765"}
            ),
        ):
            pass
        assert closed.value.code == 1008
    for base in ("http://localhost:8765", "http://127.0.0.1", "http://[::1]:8765"):
        with TestClient(app, base_url=base) as local:
            assert local.get("/api/fields").status_code == 200, base
    named = create_app(allowed_hosts=["Playground.lan"])
    with TestClient(named, base_url="http://playground.lan:8765") as client:
        assert client.get("/api/fields").status_code == 200
        with client.websocket_connect(
            "ws://playground.lan:8765/ws", headers={"origin": "http://playground.lan:8765"}
        ) as ws:
            assert _next(ws, "update")["step"] == 0
        assert client.get("/", headers={"host": "192.168.1.5:8765"}).status_code == 400
    everywhere = create_app(allowed_hosts=["0.0.0.0"])  # every address of the machine
    with TestClient(everywhere, base_url="http://192.168.1.5:8765") as client:
        assert client.get("/api/fields").status_code == 200
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_serve_answers_to_its_host_and_limits_message_size(monkeypatch):
    import torch
    import uvicorn

    from leaky.playground.server import serve

    configs = []

    class Server:
        started, should_exit, servers = True, False, []

        def __init__(self, config):
            configs.append(config)

        def run(self):
            pass

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    serve("playground.lan", 0, open_browser=False)
    (config,) = configs
    with TestClient(config.app, base_url="http://playground.lan:8765") as client:
        assert client.get("/api/fields").status_code == 200
    assert config.ws_max_size == app_module.MAX_MESSAGE_BYTES


# ------------------------------------------------------------------ the command


def test_playground_command_warns_off_loopback_and_passes_its_options(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "leaky.playground.server.serve", lambda *args, **kwargs: calls.append((args, kwargs))
    )
    result = CliRunner().invoke(cli, ["playground", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert "anyone who can reach this address" in result.stderr
    assert calls[0][0] == ("0.0.0.0", 0) and calls[0][1]["open_browser"] is True
    result = CliRunner().invoke(cli, ["playground", "--port", "0", "--no-browser"])
    assert result.exit_code == 0 and result.stderr == ""
    assert calls[1][0] == ("127.0.0.1", 0) and calls[1][1]["open_browser"] is False


def test_playground_command_names_a_port_in_use():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["playground", "--port", str(port), "--no-browser"])
    assert result.exit_code == 2 and f"Cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_playground_command_names_a_missing_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    result = CliRunner().invoke(cli, ["playground", "--no-browser"])
    assert result.exit_code == 2
    assert "needs uvicorn: pip install 'leaky[playground]'" in result.output


def test_lessons_and_the_python_export_are_served(client):
    from leaky.playground.lessons import LESSONS

    lessons = client.get("/api/lessons").json()["lessons"]
    assert [lesson["key"] for lesson in lessons] == [lesson.key for lesson in LESSONS]
    assert lessons[0]["preset"]["activation"] == "sigmoid"
    assert lessons[0]["checks"][0] == {
        "metric": "gradient_ratio",
        "activation": "sigmoid",
        "at_most": 1e-3,
        "at_least": None,
    }
    ja = client.get("/api/messages/ja").json()["messages"]
    assert ja["lessons.vanishing.title"] == "シグモイドでは勾配が消える"
    query = {"depth": "3", "compare": "true", "noise": "0.1", "steps": "7"}
    script = client.get("/api/export", params=query)
    assert script.status_code == 200
    assert script.headers["content-disposition"] == 'attachment; filename="leaky_playground.py"'
    assert "STEPS = 7" in script.text and "depth=3," in script.text
    assert '"leaky_relu": build("leaky_relu", negative_slope=0.01)' in script.text
    assert "noise=0.1," in script.text
    compile(script.text, "leaky_playground.py", "exec")
    bad = client.get("/api/export", params={"depth": "0", "compare": "yes", "steps": "x"})
    assert bad.status_code == 400
    problem = bad.json()["error"]
    assert "`depth`" in problem and "`compare`" in problem and "`steps`" in problem
    assert client.get("/api/export", params={"steps": "²"}).status_code == 400
    assert "STEPS = 500" in client.get("/api/export", params={"steps": "0"}).text  # unstarted
