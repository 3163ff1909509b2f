"""A real `gxft serve` in a child process, on a free port, with its own data dir."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import openai


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, worker: bool = True,
                 log_level: str = "warning", port: int | None = None, serve: list[str] | None = None):
        """`serve`: the command before its options, `python -m gxft serve` unless a test says it as a page does."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        command = [*(serve or [sys.executable, "-m", "gxft", "serve"]), "--port", str(self.port),
                   "--data-dir", str(data_dir), "--log-level", log_level]
        if not worker:
            command.append("--no-worker")
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gxft serve exited early:\n{self.log()}")
            try:
                if httpx2.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gxft serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, api_key: str = "sk-test") -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url + "/v1", api_key=api_key, max_retries=0, _strict_response_validation=True
        )

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if not self._log.closed:
            self._log.close()

    def worker_token(self) -> str:
        return (self.data_dir / "worker_token").read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not self._log.closed:
            self._log.close()


def start_worker(server: ServerProcess, log_path: Path, env: dict[str, str] | None = None,
                 options: tuple[str, ...] = ()) -> subprocess.Popen:
    """A `gxft worker` of its own (not the embedded one), with `options`, logging to `log_path`."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GXFT_WORKER_TOKEN": server.worker_token(),
                   "GXFT_DATA_DIR": str(server.data_dir), **(env or {})}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "gxft", "worker", "--server", server.base_url, *options],
                                env=environment, stdout=log, stderr=subprocess.STDOUT)
