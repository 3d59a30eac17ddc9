"""HTTP and Hugging Face Hub downloads against a real HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vaura_core.errors import Cancelled, ModelUnavailableError
from vaura_core.weights import download as dl
from vaura_core.weights.download import download, http_download, hub_download

_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class Served:
    body: bytes
    etag: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_at: int | None = None  # cut the connection when the body reaches this byte offset ...
    drops: int = 0  # ... on this many requests
    ignore_range: bool = False  # always answer 200 with the whole body


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class LocalServer:
    """A file server on 127.0.0.1 with Range/If-Range, request logging and scripted failures."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[Seen] = []
        self.not_found_headers: dict[str, str] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes, **kw: object) -> str:
        self.files[path] = Served(body, etag=f'"{hashlib.sha256(body).hexdigest()}"', **kw)  # type: ignore[arg-type]
        return self.url(path)

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                server.requests.append(Seen(self.command, self.path, dict(self.headers.items())))
                served = server.files.get(self.path)
                if served is None:
                    self.send_response(404)
                    for key, value in server.not_found_headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start = served.body, 0
                match = _RANGE.match(self.headers.get("Range", ""))
                if_range = self.headers.get("If-Range")
                if match and not served.ignore_range and (if_range is None or if_range == served.etag):
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                if served.etag:
                    self.send_header("ETag", served.etag)
                for key, value in served.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not body:
                    return
                end = len(data)
                if served.drops > 0 and served.drop_at is not None:
                    served.drops -= 1
                    end = max(start, served.drop_at)
                    self.close_connection = True
                self.wfile.write(data[start:end])

        return Handler


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    yield srv
    srv.stop()


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "_RETRY_DELAY_S", 0.01)


# --- plain HTTP ------------------------------------------------------------------------------------


def test_full_download_verifies_sha256_and_reports_progress(server, tmp_path):
    data = blob(300_000)
    url = server.add("/m.tar.gz", data)
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "dl" / "m.tar.gz"
    result = download(url, dest, sha256=sha(data), progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == data
    assert result.sha256 == sha(data) and result.verified and result.size == len(data)
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
    assert not list(dest.parent.glob("*.part*"))


def test_unknown_sha256_is_computed_and_returned(server, tmp_path):
    data = blob(5000, seed=1)
    url = server.add("/x.bin", data)
    result = download(url, tmp_path / "x.bin")
    assert result.sha256 == sha(data) and not result.verified


def test_dropped_connection_resumes_with_range(server, tmp_path):
    data = blob(200_000, seed=2)
    url = server.add("/big.bin", data, drop_at=70_000, drops=1)
    dest = http_download(url, tmp_path / "big.bin", sha256=sha(data))
    assert dest.read_bytes() == data
    gets = [r for r in server.requests if r.method == "GET"]
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    assert gets[1].headers["Range"] == "bytes=70000-"
    assert gets[1].headers["If-Range"] == server.files["/big.bin"].etag


def test_failed_call_keeps_partial_file_and_next_call_resumes(server, tmp_path):
    data = blob(120_000, seed=3)
    url = server.add("/p.bin", data, drop_at=50_000, drops=10)
    dest = tmp_path / "p.bin"
    with pytest.raises(ModelUnavailableError, match="resume"):
        download(url, dest, sha256=sha(data), retries=1)
    # one request that made progress, then two that stalled at byte 50000 (retries=1)
    assert [r.headers.get("Range") for r in server.requests] == [None, "bytes=50000-", "bytes=50000-"]
    part = tmp_path / "p.bin.part"
    assert part.stat().st_size == 50_000 and not dest.exists()

    server.files["/p.bin"].drops = 0
    server.requests.clear()
    assert http_download(url, dest, sha256=sha(data)).read_bytes() == data
    assert [r.headers.get("Range") for r in server.requests] == ["bytes=50000-"]
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = blob(90_000, seed=4)
    url = server.add("/nr.bin", data, ignore_range=True)
    (tmp_path / "nr.bin.part").write_bytes(b"garbage that must not survive" * 100)
    dest = http_download(url, tmp_path / "nr.bin", sha256=sha(data))
    assert dest.read_bytes() == data
    assert len(server.requests) == 1 and server.requests[0].headers.get("Range") == "bytes=2900-"


def test_changed_remote_file_is_not_spliced(server, tmp_path):
    old, new = blob(80_000, seed=5), blob(80_000, seed=6)
    url = server.add("/c.bin", old, drop_at=30_000, drops=5)
    with pytest.raises(ModelUnavailableError):
        download(url, tmp_path / "c.bin", retries=0)
    server.add("/c.bin", new)  # new ETag: If-Range no longer matches, server sends the whole file
    assert http_download(url, tmp_path / "c.bin", sha256=sha(new)).read_bytes() == new
    assert server.requests[-1].headers["If-Range"] != server.files["/c.bin"].etag


def test_complete_partial_file_gets_416_and_is_accepted(server, tmp_path):
    data = blob(10_000, seed=7)
    url = server.add("/done.bin", data)
    (tmp_path / "done.bin.part").write_bytes(data)
    assert http_download(url, tmp_path / "done.bin", sha256=sha(data)).read_bytes() == data
    assert len(server.requests) == 1


def test_stale_partial_file_larger_than_remote_restarts(server, tmp_path):
    data = blob(10_000, seed=8)
    url = server.add("/s.bin", data)
    (tmp_path / "s.bin.part").write_bytes(b"x" * 20_000)
    assert http_download(url, tmp_path / "s.bin", sha256=sha(data)).read_bytes() == data
    assert [r.headers.get("Range") for r in server.requests] == ["bytes=20000-", None]


def test_wrong_sha256_deletes_the_file_and_names_both_hashes(server, tmp_path):
    data = blob(40_000, seed=9)
    url = server.add("/bad.bin", data)
    wrong = "0" * 64
    with pytest.raises(ModelUnavailableError) as err:
        http_download(url, tmp_path / "bad.bin", sha256=wrong)
    message = str(err.value)
    assert url in message and wrong in message and sha(data) in message
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_reused_without_network_when_hash_matches(server, tmp_path):
    data = blob(1000, seed=10)
    (tmp_path / "e.bin").write_bytes(data)
    result = download(server.url("/e.bin"), tmp_path / "e.bin", sha256=sha(data))
    assert result.verified and server.requests == []


def test_404_is_a_clear_error(server, tmp_path):
    url = server.url("/missing.tar.gz")
    with pytest.raises(ModelUnavailableError, match=r"missing\.tar\.gz.*HTTP 404"):
        http_download(url, tmp_path / "missing.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path):
    srv = LocalServer()
    url = srv.url("/gone.bin")
    srv._httpd.server_close()  # the port is now closed: connections are refused
    with pytest.raises(ModelUnavailableError, match="cannot connect"):
        download(url, tmp_path / "gone.bin", retries=1)


def test_cancel_stops_the_download_and_keeps_the_partial_file(server, tmp_path):
    data = blob(400_000, seed=11)
    url = server.add("/k.bin", data)
    cancel = threading.Event()

    def on_progress(done: int, total: int | None) -> None:
        if done >= 2 * dl.CHUNK_SIZE:
            cancel.set()

    with pytest.raises(Cancelled):
        http_download(url, tmp_path / "k.bin", progress=on_progress, cancel=cancel)
    # the flag is checked before every chunk: nothing is read after it was set
    part = tmp_path / "k.bin.part"
    assert part.stat().st_size == 2 * dl.CHUNK_SIZE
    assert not (tmp_path / "k.bin").exists()
    cancel.clear()
    assert http_download(url, tmp_path / "k.bin", sha256=sha(data)).read_bytes() == data
    assert server.requests[-1].headers["Range"] == f"bytes={2 * dl.CHUNK_SIZE}-"


def test_not_enough_disk_space_fails_before_writing(server, tmp_path, monkeypatch):
    url = server.add("/huge.bin", blob(50_000, seed=12))

    class Usage:
        free = 10_000

    monkeypatch.setattr(dl.shutil, "disk_usage", lambda _: Usage())
    with pytest.raises(ModelUnavailableError, match="not enough disk space"):
        http_download(url, tmp_path / "huge.bin")
    assert not (tmp_path / "huge.bin").exists()
    part = tmp_path / "huge.bin.part"
    assert not part.exists() or part.stat().st_size == 0


# --- Hugging Face Hub ------------------------------------------------------------------------------

REPO = "acme/vaura-mirror"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def add_hub_file(server: LocalServer, filename: str, data: bytes) -> None:
    server.add(f"/{REPO}/resolve/{COMMIT}/{filename}", data, headers={"X-Repo-Commit": COMMIT})


def test_hub_download_through_local_endpoint(server, tmp_path):
    data = blob(150_000, seed=20)
    add_hub_file(server, "model.ckpt", data)
    seen: list[tuple[int, int | None]] = []
    result = hub_download(
        REPO,
        "model.ckpt",
        COMMIT,
        tmp_path / "dl",
        sha256=sha(data),
        progress=lambda d, t: seen.append((d, t)),
        endpoint=server.base,
        cache_dir=tmp_path / "hf-cache",
    )
    assert result.path.read_bytes() == data and result.verified
    assert result.path.parent == tmp_path / "dl"
    assert seen[-1] == (len(data), len(data))
    assert {(r.method, r.path) for r in server.requests} == {
        ("HEAD", f"/{REPO}/resolve/{COMMIT}/model.ckpt"),
        ("GET", f"/{REPO}/resolve/{COMMIT}/model.ckpt"),
    }

    # offline: the copy in local_dir is used, the server is not asked
    server.requests.clear()
    again = hub_download(
        REPO, "model.ckpt", COMMIT, tmp_path / "dl", sha256=sha(data), offline=True, endpoint=server.base,
        cache_dir=tmp_path / "hf-cache",
    )  # fmt: skip
    assert again.path == result.path and server.requests == []


def test_hub_offline_without_local_copy_makes_no_request(server, tmp_path):
    add_hub_file(server, "model.ckpt", b"weights")
    with pytest.raises(ModelUnavailableError, match="offline mode is on"):
        hub_download(
            REPO, "model.ckpt", COMMIT, tmp_path / "dl", sha256=sha(b"weights"), offline=True,
            endpoint=server.base, cache_dir=tmp_path / "hf-cache",
        )  # fmt: skip
    assert server.requests == []


def test_hub_sha256_mismatch_deletes_the_file(server, tmp_path):
    data = blob(20_000, seed=21)
    add_hub_file(server, "w.safetensors", data)
    with pytest.raises(ModelUnavailableError, match="does not match") as err:
        hub_download(
            REPO, "w.safetensors", COMMIT, tmp_path / "dl", sha256="f" * 64, endpoint=server.base,
            cache_dir=tmp_path / "hf-cache",
        )  # fmt: skip
    assert sha(data) in str(err.value)
    assert not (tmp_path / "dl" / "w.safetensors").exists()
    # the next attempt downloads again instead of trusting huggingface_hub's metadata
    server.requests.clear()
    ok = hub_download(
        REPO, "w.safetensors", COMMIT, tmp_path / "dl", sha256=sha(data), endpoint=server.base,
        cache_dir=tmp_path / "hf-cache",
    )  # fmt: skip
    assert ok.path.read_bytes() == data and any(r.method == "GET" for r in server.requests)


def test_hub_missing_file_is_a_clear_error(server, tmp_path):
    server.not_found_headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}
    with pytest.raises(ModelUnavailableError, match=r"acme/vaura-mirror/nope\.bin"):
        hub_download(
            REPO, "nope.bin", COMMIT, tmp_path / "dl", endpoint=server.base, cache_dir=tmp_path / "hf-cache"
        )


def test_hub_cancel(server, tmp_path):
    data = blob(3_000_000, seed=22)
    add_hub_file(server, "big.ckpt", data)
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        hub_download(
            REPO, "big.ckpt", COMMIT, tmp_path / "dl", progress=lambda d, t: cancel.set(), cancel=cancel,
            endpoint=server.base, cache_dir=tmp_path / "hf-cache",
        )  # fmt: skip
    assert not (tmp_path / "dl" / "big.ckpt").exists()
    assert not list((tmp_path / "dl").rglob("*.incomplete"))
