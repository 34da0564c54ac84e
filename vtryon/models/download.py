"""Fetching checkpoints: https through a resumable downloader, Hugging Face through huggingface_hub.

Nothing unverified ever sits under a final name. A file is written to a per-process temporary
name in its target folder, its sha256 is computed while it streams in, and it is renamed into
place (``os.replace``) only after the hash matches the published one (or, for checkpoints with
none, is recorded in the lock file: trust on first use). The temporary file is removed when the
download fails; one left by a killed run is picked up and resumed by the next.

Resuming: ``Range: bytes=N-`` with ``If-Range`` (the ETag or Last-Modified of the first
response). A ``206`` must start at ``N`` (its Content-Range is checked); a ``200`` means the
server ignored the range or the file changed, so the download restarts from zero. Dropped
connections, timeouts, stalls and 5xx answers are retried with exponential backoff; 4xx answers
are final for that source. A file lock (filelock) keeps two processes from fetching one file at
the same time; correctness does not depend on it (each process writes its own temporary file,
and the rename is atomic).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtryon.errors import DownloadError, VtryonError
from vtryon.models.manifest import ModelEntry, Source
from vtryon.models.store import ModelStore, sha256_file

_CHUNK = 1 << 20
_PERMANENT = (400, 401, 403, 404, 405, 410, 451)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass
class DownloadOptions:
    retries: int = 4  # attempts per source after the first
    backoff: float = 1.0  # seconds, doubled after each failed attempt
    timeout: float = 30.0  # seconds without a byte before an attempt is abandoned
    speed_limit: int = 1024  # bytes/s: a transfer slower than this for `speed_time` seconds is a stall
    speed_time: float = 60.0
    use_lock: bool = True
    lock_timeout: float = 6 * 3600.0
    progress: bool = True
    user_agent: str = "vtryon-downloader"


class _Retry(Exception):
    """A failed attempt that a new attempt (resuming) may fix."""


class _Restart(Exception):
    """The partial file cannot be continued: start again from byte zero."""


class _Progress:
    """A Rich progress bar on stderr, or nothing."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=None)
        return self

    def set(self, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HttpDownloader:
    """Resumable, verified https downloads into a target path (see the module docstring)."""

    def __init__(self, options: DownloadOptions | None = None, opener: Any = None) -> None:
        self.options = options or DownloadOptions()
        self.opener = opener or urllib.request.build_opener()

    # temporary files: ".<name>.<pid>.<token>.part" + ".json" metadata (url, validator)
    def _temp_for(self, target: Path) -> Path:
        return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part"

    def _adopt_stale(self, target: Path, temp: Path, url: str) -> None:
        """Take over the largest partial file a dead process left for ``target`` (same URL)."""
        best: Path | None = None
        for part in target.parent.glob(f".{target.name}.*.part"):
            try:
                pid = int(part.name[len(target.name) + 2 :].split(".")[0])
            except ValueError:
                continue
            if pid != os.getpid() and _pid_alive(pid):
                continue  # another live process is writing it
            meta = _read_meta(part)
            if meta.get("url") != url or not meta.get("validator"):
                _remove(part)
                continue
            if best is None or part.stat().st_size > best.stat().st_size:
                if best is not None:
                    _remove(best)
                best = part
            else:
                _remove(part)
        if best is not None:
            os.replace(best, temp)
            os.replace(_meta_path(best), _meta_path(temp))

    def fetch(
        self,
        url: str,
        target: Path,
        *,
        sha256: str | None = None,
        size: int | None = None,
        label: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> str:
        """Download ``url`` to ``target``; return its sha256. Raises DownloadError."""
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = self._lock(target, log)
        try:
            if target.exists() and (sha256 is None or sha256_file(target) == sha256):
                return sha256 or sha256_file(target)  # another process fetched it meanwhile
            return self._fetch_unlocked(url, target, sha256=sha256, size=size, label=label or target.name)
        finally:
            if lock is not None:
                lock.release()

    def _lock(self, target: Path, log: Callable[[str], None] | None) -> Any:
        if not self.options.use_lock:
            return None
        from filelock import FileLock, Timeout

        lock = FileLock(str(target.parent / f".{target.name}.lock"))
        try:
            lock.acquire(timeout=0)
            return lock
        except Timeout:
            if log:
                log(f"another vtryon process is downloading {target.name}; waiting for it")
            try:
                lock.acquire(timeout=self.options.lock_timeout)
                return lock
            except Timeout:
                raise DownloadError(f"gave up waiting for another process downloading {target}") from None
        except OSError:
            return None  # a filesystem without locks: per-process temporary files keep it correct

    def _fetch_unlocked(self, url: str, target: Path, *, sha256: str | None, size: int | None, label: str) -> str:
        opts = self.options
        temp = self._temp_for(target)
        self._adopt_stale(target, temp, url)
        last = "no attempt made"
        fresh_after_mismatch = False
        try:
            with _Progress(label, opts.progress) as progress:
                for attempt in range(opts.retries + 1):
                    if attempt:
                        time.sleep(opts.backoff * 2 ** (attempt - 1))
                    try:
                        digest = self._attempt(url, temp, size, progress)
                    except _Retry as exc:
                        last = str(exc)
                        continue
                    except _Restart as exc:
                        last = str(exc)
                        _truncate(temp)
                        continue
                    if sha256 is not None and digest != sha256:
                        if not fresh_after_mismatch:  # a resumed file may mix two versions: once more from zero
                            fresh_after_mismatch = True
                            last = f"sha256 {digest[:16]}… differs from the expected {sha256[:16]}…"
                            _truncate(temp)
                            continue
                        raise DownloadError(
                            f"{url}: the downloaded bytes have sha256 {digest[:16]}…, expected {sha256[:16]}…; the file was discarded",
                            hint="the server sends a different file; try another source or report it",
                        )
                    os.replace(temp, target)
                    _remove(_meta_path(temp))
                    return digest
            raise DownloadError(f"{url}: download failed after {opts.retries + 1} attempts: {last}")
        except BaseException:
            _remove(temp)
            _remove(_meta_path(temp))
            raise

    def _attempt(self, url: str, temp: Path, size: int | None, progress: _Progress) -> str:
        """One request; returns the sha256 of the complete temporary file."""
        import hashlib

        opts = self.options
        offset = temp.stat().st_size if temp.exists() else 0
        meta = _read_meta(temp)
        headers = {"User-Agent": opts.user_agent, "Accept-Encoding": "identity"}
        if offset and meta.get("validator"):
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = meta["validator"]
        elif offset:
            _truncate(temp)
            offset = 0
        request = urllib.request.Request(url, headers=headers)
        try:
            response = self.opener.open(request, timeout=opts.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416:
                raise _Restart(f"{url}: the server cannot continue at byte {offset} (416)") from None
            if exc.code in _PERMANENT:
                raise DownloadError(f"{url}: the server answered {exc.code} {exc.reason}") from None
            raise _Retry(f"{url}: the server answered {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or "unreachable" in str(reason).lower():
                raise DownloadError(f"cannot reach {urllib.request.urlparse(url).netloc} ({reason}): are you offline?") from None
            raise _Retry(f"{url}: {reason}") from None
        except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retry(f"{url}: {type(exc).__name__}: {exc}") from None
        with response:
            status = response.status
            if status == 206 and offset:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    raise _Restart(f"{url}: the server resumed at the wrong offset ({response.headers.get('Content-Range')!r})")
                total = None if match.group(3) == "*" else int(match.group(3))
            elif status == 200:
                offset = 0  # the range was ignored (or the file changed): start over
                _truncate(temp)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise _Retry(f"{url}: unexpected answer {status}")
            if size is not None and total is not None and total != size:
                raise DownloadError(f"{url}: the server offers {total} bytes, the manifest expects {size}")
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            _write_meta(temp, {"url": url, "validator": validator if validator and not validator.startswith("W/") else None})
            digest = hashlib.sha256()
            if offset:
                with open(temp, "rb") as fh:
                    for block in iter(lambda: fh.read(_CHUNK), b""):
                        digest.update(block)
            done = offset
            window_start, window_bytes = time.monotonic(), 0
            with open(temp, "ab") as out:
                while True:
                    try:
                        block = response.read1(_CHUNK)  # what has arrived: keeps the stall check timely
                    except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException, OSError) as exc:
                        raise _Retry(f"{url}: connection lost at byte {done}: {type(exc).__name__}") from None
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    window_bytes += len(block)
                    progress.set(done, total)
                    now = time.monotonic()
                    if now - window_start >= opts.speed_time:
                        if window_bytes / (now - window_start) < opts.speed_limit:
                            raise _Retry(f"{url}: stalled below {opts.speed_limit} bytes/s for {opts.speed_time:g} s")
                        window_start, window_bytes = now, 0
                    if total is not None and done > total:
                        raise _Restart(f"{url}: the server sent more than the {total} bytes it announced")
                out.flush()
                os.fsync(out.fileno())
            if total is not None and done < total:
                raise _Retry(f"{url}: connection closed at byte {done} of {total}")
            if size is not None and done != size:
                raise _Restart(f"{url}: received {done} bytes, the manifest expects {size}")
            return digest.hexdigest()


def _meta_path(temp: Path) -> Path:
    return temp.with_name(temp.name + ".json")


def _read_meta(temp: Path) -> dict[str, Any]:
    try:
        data = json.loads(_meta_path(temp).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_meta(temp: Path, data: dict[str, Any]) -> None:
    _meta_path(temp).write_text(json.dumps(data))


def _truncate(path: Path) -> None:
    if path.exists():
        with open(path, "r+b") as fh:
            fh.truncate(0)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass  # already gone, or not ours to remove: a leftover temporary file is harmless


# -- Hugging Face ------------------------------------------------------------------------------


def fetch_hf_file(source: Source, revision: str, target: Path, *, sha256: str | None, size: int | None) -> tuple[str, str]:
    """Download one Hugging Face file at ``revision`` into ``target``; return (sha256, commit)."""
    hub = hf_online()
    try:
        meta = hub.get_hf_file_metadata(hub.hf_hub_url(source.hf, source.path, revision=revision))
    except Exception as exc:  # the hub's errors: offline, 404, gated repo...
        raise DownloadError(f"hf://{source.hf}/{source.path}@{revision}: {type(exc).__name__}: {_short(exc)}") from None
    published = (meta.etag or "").strip('"').lower()
    if sha256 is None and re.fullmatch(r"[0-9a-f]{64}", published):
        sha256 = published  # an LFS file: the hub's etag is its sha256
    if size is not None and meta.size is not None and meta.size != size:
        raise DownloadError(f"hf://{source.hf}/{source.path}: the hub offers {meta.size} bytes, the manifest expects {size}")
    staging = target.parent / f".hf-{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        try:
            got = hub.hf_hub_download(source.hf, source.path, revision=meta.commit_hash or revision, local_dir=staging)
        except Exception as exc:
            raise DownloadError(f"hf://{source.hf}/{source.path}@{revision}: {type(exc).__name__}: {_short(exc)}") from None
        digest = sha256_file(Path(got))
        if sha256 is not None and digest != sha256:
            raise DownloadError(f"hf://{source.hf}/{source.path}: downloaded sha256 {digest[:16]}… differs from {sha256[:16]}…; discarded")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, target)
        return digest, meta.commit_hash or revision
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_hf_folder(source: Source, revision: str, target: Path, expected: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """Download the files of a folder entry; return ({relative path: {size, sha256}}, commit)."""
    hub = hf_online()
    base = "" if source.path in (".", "") else source.path.strip("/") + "/"
    patterns = [base + p for p in (source.patterns or ("*",))]
    staging = target.parent / f".hf-{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        try:
            info = hub.HfApi().model_info(source.hf, revision=revision)
            commit = info.sha or revision
            hub.snapshot_download(source.hf, revision=commit, allow_patterns=patterns, local_dir=staging)
        except Exception as exc:
            raise DownloadError(f"hf://{source.hf}@{revision}: {type(exc).__name__}: {_short(exc)}") from None
        root = staging / base if base else staging
        files = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.relative_to(staging).parts):
            rel = str(path.relative_to(root))
            files[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        if not files:
            raise DownloadError(f"hf://{source.hf}@{commit}: no file matched {patterns}")
        for rel, rec in (expected or {}).items():
            if files.get(rel, {}).get("sha256") != rec.get("sha256"):
                raise DownloadError(f"hf://{source.hf}@{commit}: {rel} differs from the file recorded at the first download")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(root, target)
        return files, commit
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hf_online() -> Any:
    from vtryon.models.hub import hf_module

    return hf_module(online=True)


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


# -- per entry ---------------------------------------------------------------------------------


@dataclass
class DownloadResult:
    id: str
    status: str  # "downloaded", "already installed", "failed", "needs licence", "manual"
    path: Path | None = None
    message: str = ""


def license_text(entry: ModelEntry) -> str:
    return f"{entry.id}: licence {entry.license or 'not stated'}" + (" (NON-COMMERCIAL)" if entry.noncommercial else "")


def download_entry(
    entry: ModelEntry,
    store: ModelStore,
    *,
    accept_license: bool = False,
    downloader: HttpDownloader | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> DownloadResult:
    """Fetch one checkpoint into the store, verified; TOFU-record it when no hash is published."""
    from vtryon.models.verify import UNRECORDED, check_file

    existing = store.locate(entry)
    if existing is not None:
        check = check_file(entry, existing, store)
        if check.ok:
            return DownloadResult(entry.id, "already installed", existing, check.hash_status)
        log(f"{entry.id}: the installed file is damaged ({check.problems[0]}); fetching it again")
        if existing == store.target(entry):
            shutil.rmtree(existing) if existing.is_dir() else existing.unlink()
    if entry.noncommercial and not accept_license:
        return DownloadResult(entry.id, "needs licence", None, f"{license_text(entry)}: read it, then pass --accept-license")
    if not entry.sources:
        return DownloadResult(entry.id, "manual", None, entry.manual or "no public source to fetch automatically")
    target = store.target(entry)
    locked = store.lock.get(entry.id) or {}
    errors = []
    downloader = downloader or HttpDownloader()
    for source in entry.sources:
        try:
            if entry.is_folder:
                if source.kind != "hf":
                    raise DownloadError("folder entries come from Hugging Face repositories only")
                revision = store.locked_revision(entry, source.hf) or source.revision or "main"
                files, commit = fetch_hf_folder(source, revision, target, locked.get("files"))
                record = {"file": entry.file, "files": files, "source": source.describe(), "revisions": {source.hf: commit}}
            else:
                expected = entry.sha256 or locked.get("sha256")
                if source.kind == "hf":
                    revision = store.locked_revision(entry, source.hf) or source.revision or "main"
                    digest, commit = fetch_hf_file(source, revision, target, sha256=expected, size=entry.size)
                    record = {"revisions": {source.hf: commit}}
                else:
                    digest = downloader.fetch(source.url, target, sha256=expected, size=entry.size, label=entry.id, log=log)
                    record = {}
                if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
                    target.unlink(missing_ok=True)
                    raise DownloadError(f"{source.describe()}: sha256 {digest[:16]}… lacks the published prefix {entry.sha256_prefix}")
                store.hashes.remember(target, digest)
                record = {"file": entry.file, "size": target.stat().st_size, "sha256": digest, "source": source.describe(), **record}
            check = check_file(entry, target, store)
            if check.problems:  # e.g. an HTML page where no hash could tell
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
                raise DownloadError(f"{source.describe()}: {check.problems[0]}")
            if check.hash_status in (UNRECORDED,) or not entry.sha256 or "revisions" in record:
                store.lock.record(entry.id, record)
            return DownloadResult(entry.id, "downloaded", target, source.describe())
        except DownloadError as exc:
            errors.append(str(exc))
            if source is not entry.sources[-1]:
                log(f"{entry.id}: {exc}; trying the next source")
    return DownloadResult(entry.id, "failed", None, "; ".join(errors))


def download_models(
    ids: Sequence[str],
    store: ModelStore,
    *,
    accept_license: bool = False,
    downloader: HttpDownloader | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> list[DownloadResult]:
    results = []
    for mid in ids:
        entry = store.entry(mid)
        try:
            results.append(download_entry(entry, store, accept_license=accept_license, downloader=downloader, log=log))
        except VtryonError as exc:
            results.append(DownloadResult(entry.id, "failed", None, str(exc)))
        except OSError as exc:
            results.append(DownloadResult(entry.id, "failed", None, f"{type(exc).__name__}: {exc}"))
    return results


__all__ = ["DownloadOptions", "HttpDownloader", "DownloadResult", "download_entry", "download_models", "license_text"]
