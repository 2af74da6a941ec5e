"""Fixtures for the end-to-end suite: the mock provider and Lethe as real processes on 127.0.0.1.

Both bind port 0 and announce the port they got: the mock prints ``listening on 127.0.0.1:PORT``
to stdout, Lethe prints ``lethe: serving on http://127.0.0.1:PORT`` to stderr. The binaries are
taken from ``LETHE_BIN`` and ``LETHE_MOCK_BIN``, by default ``target/release/lethe`` and
``target/release/lethe-mock-provider`` under the repository root.

One mock and one Lethe serve the whole session; every test starts with an empty request record.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anthropic
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Every request here goes to 127.0.0.1: never through a proxy the environment may name.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(v for v in (os.environ.get(_var), "127.0.0.1", "localhost") if v)
STARTUP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0


def _binary(env: str, name: str) -> Path:
    path = Path(os.environ.get(env) or ROOT / "target" / "release" / name)
    if not path.is_file():
        pytest.exit(f"{path} is missing: build it with `cargo build --release --bins` or set {env}", 2)
    return path


def _watch(stream: IO[bytes], lines: "queue.Queue[str]") -> None:
    """Hands every line of ``stream`` to ``lines`` until EOF, so the pipe never fills up."""
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


@dataclass
class Proc:
    """A started server: its process, its address and whatever else it printed."""

    name: str
    popen: subprocess.Popen[bytes]
    addr: str
    lines: "queue.Queue[str]" = field(repr=False)
    watchers: list[threading.Thread] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        for watcher in self.watchers:
            watcher.join(timeout=5)

    def printed(self) -> list[str]:
        """What the process printed besides its port line (complete once stopped)."""
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return out


def _start(name: str, argv: list[str], port_stream: str, pattern: str) -> Proc:
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    announced: "queue.Queue[str]" = queue.Queue()
    other: "queue.Queue[str]" = queue.Queue()
    watchers = []
    for stream_name, stream in (("stdout", popen.stdout), ("stderr", popen.stderr)):
        assert stream is not None
        target = announced if stream_name == port_stream else other
        watcher = threading.Thread(target=_watch, args=(stream, target), daemon=True, name=f"{name}-{stream_name}")
        watcher.start()
        watchers.append(watcher)
    try:
        line = announced.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
        popen.kill()
        popen.wait()
        pytest.exit(f"{name} did not announce its port within {STARTUP_TIMEOUT_S}s", 3)
    match = re.fullmatch(pattern, line)
    if match is None:
        popen.kill()
        popen.wait()
        rest = [other.get() for _ in range(other.qsize())]
        pytest.exit(f"{name}: unexpected first line {line!r}; other output: {rest!r}", 3)
    return Proc(name=name, popen=popen, addr=match.group(1), lines=other, watchers=watchers)


@dataclass
class Mock:
    """The mock provider, with its request recorder."""

    proc: Proc

    @property
    def url(self) -> str:
        return self.proc.url

    def requests(self) -> list[dict[str, Any]]:
        """Every request the provider received since the last ``forget``, oldest first."""
        with urllib.request.urlopen(f"{self.url}/__mock/requests", timeout=REQUEST_TIMEOUT_S) as r:
            return json.loads(r.read())

    def saw(self) -> str:
        """Everything the provider received (bodies, headers, paths), as one string."""
        return json.dumps(self.requests())

    def forget(self) -> None:
        req = urllib.request.Request(f"{self.url}/__mock/requests", method="DELETE")
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S):
            pass


@pytest.fixture(scope="session")
def mock() -> Mock:
    proc = _start(
        "lethe-mock-provider",
        [str(_binary("LETHE_MOCK_BIN", "lethe-mock-provider")), "--listen", "127.0.0.1:0"],
        "stdout",
        r"listening on (127\.0\.0\.1:\d+)",
    )
    yield Mock(proc)
    proc.stop()


def start_lethe(mock: Mock, *extra: str) -> Proc:
    """`lethe serve` on a free loopback port in front of `mock` for both formats."""
    return _start(
        "lethe",
        [
            str(_binary("LETHE_BIN", "lethe")),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--openai-upstream",
            mock.url,
            "--anthropic-upstream",
            mock.url,
            *extra,
        ],
        "stderr",
        r"lethe: serving on http://(127\.0\.0\.1:\d+)",
    )


@pytest.fixture(scope="session")
def lethe(mock: Mock) -> Proc:
    proc = start_lethe(mock)
    yield proc
    proc.stop()
    # Zero-log: after its port line Lethe says nothing, not even about the errors provoked here.
    printed = proc.printed()
    assert printed == [], f"lethe printed {printed!r}"


@pytest.fixture(autouse=True)
def _fresh_record(mock: Mock) -> None:
    mock.forget()


@pytest.fixture
def oai(lethe: Proc) -> openai.OpenAI:
    client = openai.OpenAI(
        base_url=f"{lethe.url}/v1", api_key="sk-e2e-client", max_retries=0, timeout=REQUEST_TIMEOUT_S
    )
    yield client
    client.close()


@pytest.fixture
def ant(lethe: Proc) -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=lethe.url, api_key="sk-ant-e2e-client", max_retries=0, timeout=REQUEST_TIMEOUT_S
    )
    yield client
    client.close()


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(url: str, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None) -> Raw:
    """One HTTP request with the standard library, for what an SDK refuses to send."""
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as r:
            return Raw(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Raw(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
