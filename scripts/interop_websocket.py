"""WebSocket interop: Python's `websockets` as both the client and the origin,
fulcrum in between (HTTP/1.1 Upgrade). Echo of text and a large binary
message, many sockets at once, close from the client and from the origin,
and an origin that refuses the upgrade. Loopback only; the fulcrum process
started here is stopped by its PID; every loop is bounded.

Usage: python3 scripts/interop_websocket.py path/to/fulcrum
"""

import asyncio
import http
import os
import re
import signal
import subprocess
import sys
import tempfile

import websockets

CONFIG = """
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
[[listeners]]
name = "ws"
address = "127.0.0.1:0"
[[listeners.routes]]
cluster = "echo"
[[clusters]]
name = "echo"
endpoints = [{{ address = "127.0.0.1:{port}" }}]
"""


def fail(msg):
    print(f"interop: FAIL: websocket: {msg}", file=sys.stderr)
    sys.exit(1)


async def origin(ws, *_path):
    """Echoes data; "close-me" closes with 1000 "bye"."""
    try:
        async for msg in ws:
            if msg == "close-me":
                await ws.close(1000, "bye")
                return
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def refuse(path, _headers):
    """process_request hook: /refuse gets 403 instead of the handshake."""
    if path == "/refuse":
        return (http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"no sockets here\n")
    return None


async def check(url):
    async with websockets.connect(url + "/echo", max_size=None) as ws:
        await ws.send("hello")
        if await ws.recv() != "hello":
            fail("text echo")
        big = bytes(i % 251 for i in range(2 * 1024 * 1024))
        await ws.send(big)
        if await ws.recv() != big:
            fail("2 MiB binary echo")
    print("interop: ok: websocket (python websockets): text and 2 MiB binary echo, client close")

    async def one(i):
        async with websockets.connect(url + f"/many/{i}") as ws:
            for j in range(10):
                await ws.send(f"{i}:{j}")
                if await ws.recv() != f"{i}:{j}":
                    fail(f"socket {i} message {j}")

    await asyncio.gather(*(one(i) for i in range(50)))
    print("interop: ok: websocket: 50 concurrent sockets, 10 echoes each")

    async with websockets.connect(url + "/close") as ws:
        await ws.send("close-me")
        try:
            await ws.recv()
            fail("the origin's close did not arrive")
        except websockets.ConnectionClosedOK as e:
            if e.rcvd is None or e.rcvd.code != 1000 or e.rcvd.reason != "bye":
                fail(f"close frame {e.rcvd}")
    print("interop: ok: websocket: close from the origin (1000 bye)")

    try:
        async with websockets.connect(url + "/refuse"):
            fail("a refused upgrade opened a socket")
    except websockets.InvalidStatusCode as e:
        if e.status_code != 403:
            fail(f"refused upgrade answered {e.status_code}, not the origin's 403")
    print("interop: ok: websocket: the origin's refusal (403) reaches the client")


async def main(binary):
    server = await websockets.serve(
        origin, "127.0.0.1", 0, process_request=refuse, max_size=None
    )
    port = server.sockets[0].getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(CONFIG.format(port=port))
        config = f.name
    proc = subprocess.Popen(
        [binary, "run", "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        listener = None
        for _ in range(50):
            line = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline), 30
            )
            m = re.search(r"listener ws on http://([0-9.:]+)", line)
            if m:
                listener = m.group(1)
                break
        if listener is None:
            fail("fulcrum did not print its listener")
        await asyncio.wait_for(check(f"ws://{listener}"), 120)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(config)
        server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
