"""Measure the playground server the way a page uses it, and print the figures as JSON.

    python examples/playground_measure.py --soak 600

Starts `leaky playground` in a child process on a free loopback port and talks to it over
its WebSocket like the page does (the `websockets` client comes with uvicorn[standard]):

* views per second and training steps per second while playing, for a 4 x 16 and a
  20 x 64 network on two spirals;
* latency from a changed setting to the first view with it, at the server's WebSocket
  (a setting that rebuilds the networks: noise; one that does not: the learning rate);
* the server's resident memory, sampled while one session plays for ``--soak`` seconds;
* the server's CPU use (all its threads) while that session is paused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from websockets.sync.client import connect

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def receive(ws, kind: str, timeout: float = 120.0, match=lambda m: True) -> dict:
    """The next message of ``kind`` that satisfies ``match``."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if message["type"] == kind and match(message):
            return message


def pause(ws) -> None:
    """Pause and wait until the session says it is paused."""
    ws.send(json.dumps({"type": "pause"}))
    receive(ws, "update", match=lambda m: not m["running"])


def rates(ws, setup: dict, seconds: float) -> dict:
    """Views/s and steps/s while playing ``setup``."""
    ws.send(json.dumps({"type": "params", "params": setup}))
    receive(ws, "accepted")
    ws.send(json.dumps({"type": "play"}))
    receive(ws, "update", match=lambda m: m["running"])
    times, steps = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        message = receive(ws, "update")
        times.append(time.monotonic())
        steps.append(message["step"])
    pause(ws)
    span = times[-1] - times[0]
    return {
        "views_per_second": round((len(times) - 1) / span, 2),
        "steps_per_second": round((steps[-1] - steps[0]) / span, 1),
        "seconds": round(span, 1),
    }


def latency(ws, field: str, values: list, repeats: int) -> dict:
    """Seconds from sending a changed setting to the first view that shows it (playing)."""
    ws.send(json.dumps({"type": "play"}))
    receive(ws, "update", match=lambda m: m["running"])
    waits = []
    for i in range(repeats):
        value = values[i % len(values)]
        start = time.monotonic()
        ws.send(json.dumps({"type": "params", "params": {field: value}}))
        receive(ws, "update", match=lambda m, v=value: m["params"][field] == v)
        waits.append(time.monotonic() - start)
    pause(ws)
    return {
        "median_ms": round(1000 * statistics.median(waits)),
        "max_ms": round(1000 * max(waits)),
        "repeats": repeats,
    }


def main() -> None:
    """Run every measurement and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--latency-repeats", type=int, default=10)
    parser.add_argument("--soak", type=float, default=600.0, help="seconds of play")
    parser.add_argument("--paused", type=float, default=30.0, help="seconds paused")
    args = parser.parse_args()
    server = subprocess.Popen(
        # The soak sends no command for its whole length: keep the session past it.
        [
            *(sys.executable, "-m", "leaky", "playground", "--port", "0", "--no-browser"),
            *("--idle-timeout", str(args.soak + 600)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        results: dict = {"url": url}
        with connect(url.replace("http", "ws") + "ws", max_size=None) as ws:
            receive(ws, "update")
            small = {"dataset": "spirals", "depth": 4, "width": 16}
            results["rates_4x16"] = rates(ws, small, args.rate_seconds)
            results["rates_20x64"] = rates(ws, {"depth": 20, "width": 64}, args.rate_seconds)
            print(json.dumps(results), file=sys.stderr, flush=True)  # in case of a later failure
            ws.send(json.dumps({"type": "params", "params": small}))
            receive(ws, "accepted")
            results["latency_rebuild_noise"] = latency(
                ws, "noise", [0.06, 0.05], args.latency_repeats
            )
            results["latency_live_learning_rate"] = latency(
                ws, "learning_rate", [0.02, 0.01], args.latency_repeats
            )
            print(json.dumps(results), file=sys.stderr, flush=True)
            ws.send(json.dumps({"type": "play"}))
            samples = []
            start = time.monotonic()
            while time.monotonic() - start < args.soak:
                receive(ws, "update")
                if not samples or time.monotonic() - start >= 10 * len(samples):
                    samples.append((round(time.monotonic() - start), round(rss_mib(server.pid), 1)))
            last = receive(ws, "update")
            pause(ws)
            results["soak"] = {
                "seconds": round(time.monotonic() - start),
                "steps": last["step"],
                "rss_mib_first_last_max": [
                    samples[0][1],
                    samples[-1][1],
                    max(s for _, s in samples),
                ],
                "rss_mib_after_60s": [s for t, s in samples if t >= 60][:1],
                "samples": samples,
            }
            # Paused, the worker completes this setup's born-dead estimate, then idles (no
            # message comes if it was complete already).
            with contextlib.suppress(TimeoutError):
                receive(ws, "born_dead", timeout=120, match=lambda m: m["born_dead"]["done"])
            time.sleep(2)
            before, clock = cpu_seconds(server.pid), time.monotonic()
            time.sleep(args.paused)
            used = cpu_seconds(server.pid) - before
            results["paused_cpu_percent_of_one_core"] = round(
                100 * used / (time.monotonic() - clock), 2
            )
        print(json.dumps(results, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
