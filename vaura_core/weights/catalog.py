"""The models VAURA Studio knows how to download.

An entry lists the files to fetch; once they are all present, `import_weights` converts them into
the store format (model.safetensors + config.json + manifest.json). A file comes either from a
plain HTTPS URL (resumable, sha256-checked) or from the Hugging Face Hub, pinned to a full commit
hash so a download is reproducible and a cached copy needs no network round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class HttpFile:
    """A file behind a plain URL. `sha256=None` means unknown: it is recorded on first download."""

    url: str
    filename: str  # name of the local copy under <root>/.downloads/<model>/
    sha256: str | None = None
    approx_bytes: int | None = None  # shown before the download starts; the server has the final word

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"sha256 of {self.url} must be 64 lowercase hex digits")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"{self.url!r} is not an http(s) URL")


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face Hub repository, pinned to a commit."""

    repo_id: str
    filename: str
    revision: str  # full 40-digit commit hash, never a branch name
    sha256: str
    endpoint: str | None = None  # None: huggingface.co, or HF_ENDPOINT when set before import
    approx_bytes: int | None = None

    def __post_init__(self) -> None:
        if not _COMMIT.fullmatch(self.revision):
            raise ValueError(f"{self.repo_id}: revision must be a full commit hash, got {self.revision!r}")
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"{self.repo_id}/{self.filename}: sha256 must be 64 lowercase hex digits")

    @property
    def display(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}@{self.revision[:10]}"


RemoteFile = HttpFile | HubFile


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    config_hint: str | None = None  # preset name passed to import_weights
    license: str = ""

    @property
    def approx_bytes(self) -> int | None:
        sizes = [f.approx_bytes for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    @property
    def source(self) -> str:
        return ", ".join(f.url if isinstance(f, HttpFile) else f.display for f in self.files)


# vaura.md 8.1: the official release; the Lightning checkpoint carries the visual tower and the DAC
# weights too (vaura.md 4), so this one tarball is all the model needs. Its sha256 is not published.
# Its size is not published either: 3.4 GB is vaura.md 4's estimate of the weights alone (817 M fp32 +
# 77 M fp16 parameters), shown before asking; the download checks the server's Content-Length again.
VAURA_TARBALL_APPROX_BYTES = 3_400_000_000
VAURA_TARBALL_URL = (
    "https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/v-aura_public/24-08-01T08-34-26.tar.gz"
)

CATALOG: dict[str, CatalogEntry] = {
    "vaura": CatalogEntry(
        name="vaura",
        description="V-AURA (VGGSound/VisualSound, 9 DAC codebooks, 44.1 kHz): the official release",
        files=(
            HttpFile(
                url=VAURA_TARBALL_URL,
                filename="24-08-01T08-34-26.tar.gz",
                approx_bytes=VAURA_TARBALL_APPROX_BYTES,
            ),
        ),
        config_hint="vaura",
        license="code MIT; weight terms unstated (visual tower initialised from CC-BY-NC Motionformer)",
    ),
}
