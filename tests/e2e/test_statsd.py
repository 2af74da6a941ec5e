"""Lethe's metrics through a real StatsD daemon: the ``statsd`` npm package (installed into
``.statsd/`` by ``scripts/setup-statsd``) runs on 127.0.0.1 with its console backend and a short
flush interval; Lethe sends to it with ``--statsd``; the SDKs drive traffic, and the test reads the
aggregated series the daemon prints at each flush.

The test is skipped, loudly, only when node is not installed.
"""

from __future__ import annotations

import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import openai
import pytest

from conftest import ROOT, Mock, Proc, start_lethe

STATSD = ROOT / ".statsd" / "node_modules" / "statsd" / "stats.js"
EMAIL = "jane.doe@example.com"
FLUSH_MS = 500


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StatsdDaemon:
    """The daemon and everything it printed."""

    def __init__(self, config: Path) -> None:
        self.popen = subprocess.Popen(
            ["node", str(STATSD), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=STATSD.parent,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.text = ""
        assert self.popen.stdout is not None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in iter(self.popen.stdout.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace"))

    def output_until(self, pattern: str, timeout: float = 15.0) -> str:
        """Everything printed so far, once ``pattern`` appears in it (or fails)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.text += self.lines.get(timeout=0.2)
            except queue.Empty:
                pass
            if re.search(pattern, self.text):
                return self.text
        pytest.fail(f"statsd never printed {pattern!r}; it printed:\n{self.text[-4000:]}")

    def total(self, key: str) -> int:
        """The sum of every flushed value of counter ``key`` (a regex) so far, read from the
        ``counters`` section of each flush (``counter_rates`` repeats the keys)."""
        sections = [part.split("timers:", 1)[0] for part in self.text.split("counters: {")[1:]]
        return sum(
            int(n) for section in sections for n in re.findall(r"'" + key + r"'\s*:\s*(\d+)", section)
        )

    def total_until(self, key: str, expected: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.total(key) < expected and time.monotonic() < deadline:
            try:
                self.text += self.lines.get(timeout=0.2)
            except queue.Empty:
                pass
        assert self.total(key) == expected, f"{key}: {self.total(key)} != {expected}\n{self.text[-4000:]}"

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


@pytest.fixture(scope="module")
def statsd(tmp_path_factory: pytest.TempPathFactory) -> StatsdDaemon:
    if shutil.which("node") is None:
        pytest.skip("SKIPPED LOUDLY: node is not installed, so the StatsD end-to-end test cannot run")
    if not STATSD.is_file():
        pytest.fail(f"{STATSD} is missing: run scripts/setup-statsd")
    port = _free_port(socket.SOCK_DGRAM)
    config = tmp_path_factory.mktemp("statsd") / "config.js"
    config.write_text(
        "{\n"
        f"  port: {port}, address: '127.0.0.1',\n"
        f"  mgmt_port: {_free_port(socket.SOCK_STREAM)}, mgmt_address: '127.0.0.1',\n"
        f"  flushInterval: {FLUSH_MS}, percentThreshold: [95],\n"
        "  backends: ['./backends/console'], console: { prettyprint: false },\n"
        "  deleteIdleStats: true\n"
        "}\n"
    )
    daemon = StatsdDaemon(config)
    daemon.output_until(r"server is up")
    daemon.port = port  # type: ignore[attr-defined]
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def metered(statsd: StatsdDaemon, mock: Mock) -> Proc:
    proc = start_lethe(mock, "--statsd", f"127.0.0.1:{statsd.port}")  # type: ignore[attr-defined]
    yield proc
    proc.stop()
    assert proc.printed() == []


def test_statsd_aggregates_lethe_series_without_content(statsd: StatsdDaemon, metered: Proc) -> None:
    client = openai.OpenAI(base_url=f"{metered.url}/v1", api_key="sk-e2e", max_retries=0, timeout=10)
    messages = [{"role": "user", "content": f"mail {EMAIL}"}]
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
    assert all(c.usage is None for c in chunks), "usage the client did not ask for is dropped"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, extra_headers={"x-mock-status": "429"}
        )
    client.close()

    tags = r"route=openai;endpoint=chat_completions"
    # Counters are summed per flush; the requests may straddle flushes, so add them up.
    statsd.total_until(r"lethe\.errors;kind=rate_limit;" + tags, 1)
    statsd.total_until(r"lethe\.requests;" + tags + r";status=2xx;model=gpt-4o-mini", 4)
    statsd.total_until(r"lethe\.detections;type=email;direction=request", 5)
    out = statsd.output_until(r"'lethe\.stream_ttft;" + tags + r";model=gpt-4o-mini'")
    for timer in ("request_duration", "upstream_ttfb", "overhead_us", "held_back_bytes"):
        assert re.search(r"'lethe\." + timer + ";" + tags, out), f"no {timer} timer:\n{out[-4000:]}"
    for counter in ("tokens_input", "tokens_output", "tokens_total", "cost_micro_usd"):
        assert statsd.total(r"lethe\." + counter + ";" + tags + r";model=gpt-4o-mini") > 0, counter
    out = statsd.output_until(r"'lethe\.streams_active'")
    assert "'lethe.connections_active'" in out
    for leak in (EMAIL, "jane", "example.com", "sk-e2e"):
        assert leak not in out, f"the StatsD daemon received {leak!r}"
