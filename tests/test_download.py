"""Downloads against a local HTTP server on 127.0.0.1 with injected faults. No test touches the internet."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from loader_support import heads_entry, heads_state, write_checkpoint, write_manifest

from vtryon.errors import DownloadError
from vtryon.models.download import DownloadOptions, HttpDownloader

FAST = DownloadOptions(retries=3, backoff=0.01, timeout=2.0, speed_limit=1, speed_time=60.0, progress=False)


class FaultServer:
    """Serves ``files``; ``faults[path]`` injects: status codes to answer first, a connection dropped
    after N bytes (``drop``, ``drops`` times), Range ignored, wrong bytes, a wrong Content-Length,
    and a slow trickle. Every request is logged as (path, Range header, status)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, dict] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha256(self.files[path]).hexdigest()[:16] + '"'

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path, rng = h.path, h.headers.get("Range")
        fault = self.faults.get(path, {})
        with self.lock:
            statuses = fault.get("statuses", [])
            status = statuses.pop(0) if statuses else None
        if path not in self.files:
            status = 404
        if status is not None:
            self.log.append((path, rng, status))
            h.send_response(status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = self.files[path]
        if fault.get("wrong_bytes"):
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        start = 0
        if rng and not fault.get("ignore_range") and h.headers.get("If-Range") == self.etag(path):
            start = int(rng.split("=")[1].split("-")[0])
        code = 206 if start else 200
        self.log.append((path, rng, code))
        h.send_response(code)
        length = fault.get("length", len(body) - start)
        h.send_header("Content-Length", str(length))
        h.send_header("ETag", self.etag(path))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.end_headers()
        payload = body[start:]
        with self.lock:
            drop = fault.get("drops", 0) > 0
            if drop:
                fault["drops"] -= 1
        if drop:
            payload = payload[: fault["drop"]]
        if "length" in fault:
            payload = payload[:length]
        try:
            if "trickle" in fault:
                chunk, delay, limit = fault["trickle"]
                t0 = time.monotonic()
                for i in range(0, len(payload), chunk):
                    if time.monotonic() - t0 > limit:
                        break
                    h.wfile.write(payload[i : i + chunk])
                    h.wfile.flush()
                    time.sleep(delay)
            else:
                h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if drop or "length" in fault or "trickle" in fault:
            h.close_connection = True

    def gets(self, path: str, code: int | None = None) -> int:
        return sum(1 for p, _r, c in self.log if p == path and (code is None or c == code))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FaultServer()
    yield srv
    srv.close()


PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".part.json")) or p.name.startswith(".hf-"))


def test_plain_download_verified_and_renamed(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    target = tmp_path / "m" / "w.pth"
    assert HttpDownloader(FAST).fetch(server.url("/w.pth"), target, sha256=DIGEST, size=len(PAYLOAD)) == DIGEST
    assert target.read_bytes() == PAYLOAD and _leftovers(target.parent) == []


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    server.faults["/w.pth"] = {"drop": 100_000, "drops": 2}
    target = tmp_path / "w.pth"
    HttpDownloader(FAST).fetch(server.url("/w.pth"), target, sha256=DIGEST, size=len(PAYLOAD))
    assert target.read_bytes() == PAYLOAD
    ranges = [r for _p, r, c in server.log if c == 206]
    assert ranges == ["bytes=100000-", "bytes=200000-"]  # each retry continued where the last stopped


def test_range_ignored_restarts_from_zero(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    server.faults["/w.pth"] = {"drop": 100_000, "drops": 1, "ignore_range": True}
    target = tmp_path / "w.pth"
    HttpDownloader(FAST).fetch(server.url("/w.pth"), target, sha256=DIGEST)
    assert target.read_bytes() == PAYLOAD
    assert [c for _p, _r, c in server.log] == [200, 200] and server.log[1][1] == "bytes=100000-"


def test_wrong_bytes_are_discarded(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    server.faults["/w.pth"] = {"wrong_bytes": True}
    target = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="sha256 .* expected"):
        HttpDownloader(FAST).fetch(server.url("/w.pth"), target, sha256=DIGEST)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_wrong_length(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    with pytest.raises(DownloadError, match="offers 300000 bytes, the manifest expects 299999"):
        HttpDownloader(FAST).fetch(server.url("/w.pth"), tmp_path / "w.pth", size=len(PAYLOAD) - 1)
    server.faults["/w.pth"] = {"drop": 1000, "drops": 99, "ignore_range": True}  # always cut short
    with pytest.raises(DownloadError, match="connection closed at byte 1000 of 300000"):
        HttpDownloader(FAST).fetch(server.url("/w.pth"), tmp_path / "w.pth")
    server.faults["/w.pth"] = {"length": len(PAYLOAD) - 10}  # claims a shorter file and sends it
    with pytest.raises(DownloadError, match="sha256"):
        HttpDownloader(FAST).fetch(server.url("/w.pth"), tmp_path / "w.pth", sha256=DIGEST)
    assert not (tmp_path / "w.pth").exists() and _leftovers(tmp_path) == []


def test_slow_server_is_abandoned_in_bounded_time(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    server.faults["/w.pth"] = {"trickle": (100, 0.05, 3.0)}  # 2 KB/s, for at most 3 s per request
    opts = DownloadOptions(retries=1, backoff=0.01, timeout=2.0, speed_limit=50_000, speed_time=0.5, progress=False)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="stalled below"):
        HttpDownloader(opts).fetch(server.url("/w.pth"), tmp_path / "w.pth")
    assert time.monotonic() - t0 < 8 and _leftovers(tmp_path) == []


def test_404_is_final_and_500_is_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        HttpDownloader(FAST).fetch(server.url("/missing.pth"), tmp_path / "a.pth")
    assert server.gets("/missing.pth") == 1
    server.files["/w.pth"] = PAYLOAD
    server.faults["/w.pth"] = {"statuses": [500, 503]}
    HttpDownloader(FAST).fetch(server.url("/w.pth"), tmp_path / "w.pth", sha256=DIGEST)
    assert [c for _p, _r, c in server.log if _p == "/w.pth"] == [500, 503, 200]
    server.faults["/x.pth"] = {"statuses": [500] * 10}
    server.files["/x.pth"] = PAYLOAD
    with pytest.raises(DownloadError, match="after 4 attempts.*500"):
        HttpDownloader(FAST).fetch(server.url("/x.pth"), tmp_path / "x.pth")
    assert server.gets("/x.pth") == 4


def test_offline_is_one_clear_line(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused, like a machine without network
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1:.*are you offline"):
        HttpDownloader(FAST).fetch(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth")


@pytest.mark.parametrize("use_lock", [True, False])
def test_two_concurrent_downloads_of_one_file(server, tmp_path, use_lock):
    server.files["/w.pth"] = PAYLOAD
    server.faults["/w.pth"] = {"trickle": (30_000, 0.02, 10.0)}
    opts = DownloadOptions(retries=2, backoff=0.01, timeout=5.0, progress=False, use_lock=use_lock)
    target = tmp_path / "w.pth"
    errors: list[BaseException] = []

    def run():
        try:
            HttpDownloader(opts).fetch(server.url("/w.pth"), target, sha256=DIGEST)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and target.read_bytes() == PAYLOAD and _leftovers(tmp_path) == []
    assert server.gets("/w.pth", 200) == (1 if use_lock else 2)  # the lock saves the second fetch


def test_stale_temporary_file_from_a_killed_run_is_resumed(server, tmp_path):
    server.files["/w.pth"] = PAYLOAD
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer runs: what a killed download leaves behind
    stale = tmp_path / f".w.pth.{dead.pid}.0bad0bad.part"
    stale.write_bytes(PAYLOAD[:123_456])
    Path(str(stale) + ".json").write_text(json.dumps({"url": server.url("/w.pth"), "validator": server.etag("/w.pth")}))
    HttpDownloader(FAST).fetch(server.url("/w.pth"), tmp_path / "w.pth", sha256=DIGEST)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD
    assert server.log == [("/w.pth", "bytes=123456-", 206)] and _leftovers(tmp_path) == []


def _cli(*args: str, env: dict | None = None):
    from typer.testing import CliRunner

    from vtryon.cli import app

    return CliRunner().invoke(app, list(args), env=env)


def test_cli_download_verifies_records_and_gates_licences(server, tmp_path):
    src = write_checkpoint(tmp_path / "src" / "alex.pth", heads_state())
    server.files["/alex.pth"] = src.read_bytes()
    url = server.url("/alex.pth")
    manifest = write_manifest(
        tmp_path / "extra.toml",
        heads_entry("heads", sha256=hashlib.sha256(src.read_bytes()).hexdigest(), sources=[{"url": url}]),
        heads_entry("heads_tofu", sources=[{"url": url}]),
        heads_entry("heads_nc", sources=[{"url": url}], noncommercial=True, license="CC BY-NC 4.0"),
    )
    models = tmp_path / "models"
    common = ["--models-dir", str(models), "--manifest", str(manifest)]
    result = _cli("download", "heads", "heads_tofu", *common)
    assert result.exit_code == 0, result.output
    assert (models / "heads" / "alex.pth").read_bytes() == src.read_bytes()
    lock = json.loads((models / "vtryon.lock.json").read_text())
    assert lock["heads_tofu"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert "heads" not in lock  # a published hash needs no record
    again = _cli("download", "heads", *common)
    assert again.exit_code == 0 and "already installed" in again.output and server.gets("/alex.pth") == 2

    refused = _cli("download", "heads_nc", *common)
    assert refused.exit_code == 2 and "CC BY-NC 4.0" in refused.output and "--accept-license" in refused.output
    assert not (models / "heads_nc").exists()
    accepted = _cli("download", "heads_nc", "--accept-license", *common)
    assert accepted.exit_code == 0 and (models / "heads_nc" / "alex.pth").exists()

    assert _cli("download", *common).exit_code == 2  # nothing named: no accidental 40 GB


def test_cli_download_failure_exit_code_and_no_partial_file(server, tmp_path):
    manifest = write_manifest(tmp_path / "extra.toml", heads_entry("heads", sources=[{"url": server.url("/gone.pth")}]))
    result = _cli("download", "heads", "--models-dir", str(tmp_path / "m"), "--manifest", str(manifest))
    assert result.exit_code == 1 and "404" in result.output
    assert not (tmp_path / "m" / "heads" / "alex.pth").exists()


class _FakeHub:
    """Stands in for huggingface_hub: serves one file from memory, at a commit."""

    def __init__(self, content: bytes, etag: str) -> None:
        self.content, self.etag, self.calls = content, etag, []

    def hf_hub_url(self, repo, path, revision=None):
        return f"hf://{repo}/{path}@{revision}"

    def get_hf_file_metadata(self, url):
        return SimpleNamespace(etag=f'"{self.etag}"', size=len(self.content), commit_hash="c" * 40)

    def hf_hub_download(self, repo, path, revision=None, local_dir=None):
        self.calls.append(revision)
        out = Path(local_dir) / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(self.content)
        return str(out)


def test_hugging_face_files_are_hashed_and_the_branch_pinned(tmp_path, monkeypatch):
    import vtryon.models.download as dl
    from vtryon.models.download import download_entry
    from vtryon.models.store import ModelStore

    content = write_checkpoint(tmp_path / "src" / "alex.pth", heads_state()).read_bytes()
    manifest = write_manifest(tmp_path / "extra.toml", heads_entry("heads", sources=[{"hf": "org/heads", "revision": "main", "path": "alex.pth"}]))
    store = ModelStore(tmp_path / "models", [manifest])
    bad = _FakeHub(content, "0" * 64)  # the hub's LFS sha256 says something else: refused
    monkeypatch.setattr(dl, "hf_online", lambda: bad)
    result = download_entry(store.entry("heads"), store)
    assert result.status == "failed" and "differs" in result.message
    assert not store.target(store.entry("heads")).exists() and _leftovers(store.target(store.entry("heads")).parent) == []
    good = _FakeHub(content, hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(dl, "hf_online", lambda: good)
    assert download_entry(store.entry("heads"), store).status == "downloaded"
    assert good.calls == ["c" * 40]  # fetched at the commit "main" resolved to
    assert store.lock.get("heads")["revisions"] == {"org/heads": "c" * 40}


def test_huggingface_hub_is_offline_unless_downloading(tmp_path):
    code = (
        "import os; import vtryon.models.hub as h; h.hf_module(); import huggingface_hub.constants as c;"
        "print(os.environ['HF_HUB_OFFLINE'], c.HF_HUB_OFFLINE); h.hf_module(online=True); print(c.HF_HUB_OFFLINE)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "True", "False"]
    env["HF_HUB_OFFLINE"] = "1"  # the user's own setting wins over `vtryon download`
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "HF_HUB_OFFLINE is set" in failed.stderr
