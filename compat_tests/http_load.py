"""Load from many keep-alive HTTP/1.1 clients in one asyncio process, cheap enough on the client side
that the server's own cost shows. Used by the load test and by scripts/bench/api.py."""

import asyncio
import random
import statistics
import time


class Connection:
    """One keep-alive connection that sends a GET and reads its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, api_key: str):
        self.reader, self.writer = reader, writer
        self.head = f"Host: {host}\r\nAuthorization: Bearer {api_key}\r\n\r\n"

    @classmethod
    async def open(cls, host: str, port: int, api_key: str) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}", api_key)

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return status


async def load(port: int, paths: list[str], clients: int, seconds: float, api_key: str = "sk-load") -> dict:
    """`clients` connections each GET a random one of `paths` in a loop for `seconds`.

    An error is an answer other than 200 or a broken connection (which is then opened again).
    """
    connections = [await Connection.open("127.0.0.1", port, api_key) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        pick = random.Random(index)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status = await connections[index].get(pick.choice(paths))
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                connections[index] = await Connection.open("127.0.0.1", port, api_key)
                continue
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(f"HTTP {status}")

    started = time.perf_counter()
    await asyncio.gather(*(client(index) for index in range(clients)))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.writer.close()
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "first_errors": errors[:5],
            "requests_per_second": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * len(latencies))]}


def run_loop(coroutine):
    try:
        import uvloop  # the server's own loop, when installed; the client then costs less of the machine
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
