"""Tools for probing the local server over real sockets: raw requests, a server subprocess, and
a process scan that finds what a server left running (independent of the server's own code)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, body)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def raw_request(url: str, data: bytes, timeout: float = 10) -> RawResponse:
    with socket.create_connection(host_port(url), timeout=timeout) as sock:
        sock.sendall(data)
        return parse_response(read_all(sock, timeout))


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def processes_with_env(name: str, value: str) -> list[int]:
    """Live (non-zombie) processes whose environment has ``name=value``: read from /proc."""
    mark = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def leftover_workers(data_dir: Path, settle: float = 5.0) -> list[int]:
    """The processes still running for ``data_dir``'s jobs after up to ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while True:
        found = processes_with_env("VSR_LOCAL_DATA_DIR", str(data_dir.resolve()))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


class ServerProcess:
    """``vsr-local serve`` as a user runs it, in a session of its own (killable as a group)."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log = open(data_dir.parent / f"{data_dir.name}-server.log", "ab")  # noqa: SIM115
        script = Path(sys.executable).with_name("vsr-local")
        self.proc = subprocess.Popen(
            [str(script), "serve", "--port", "0", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            self.url = json.loads(line)["url"]
        except (ValueError, KeyError):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"vsr-local serve did not start: first line {line!r}") from None
        # Its JSON logs go on to stdout: keep reading so a full pipe never stalls it.
        import threading

        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.write(line)

    def get(self, path: str) -> dict:
        return requests.get(self.url + path, timeout=10).json()

    def stop(self, sig: int = 15, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code
