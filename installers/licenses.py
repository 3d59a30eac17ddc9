"""Licence notices for everything a bundle ships: our dependency closure plus the Python runtime.

The closure is computed from the installed metadata (requirements with their environment markers),
so it follows pyproject.toml without a second list to keep in sync. Each distribution contributes
the licence files its wheel carries; a wheel without any (PySide6, for one) gets the full text of
its SPDX licence from the system's common-licenses folder when that is available, and is reported
otherwise so the build can say what is missing.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT_DISTRIBUTION = "vaura-studio"
_LICENCE_FILE = re.compile(r"(^|/)(licen[cs]e|copying|notice|copyright|authors)[^/]*$", re.IGNORECASE)
# Licence names as projects spell them -> files in Debian's /usr/share/common-licenses.
_COMMON_LICENCES = [
    (re.compile(r"LGPL-?3|LGPLv3|Lesser General Public License v3", re.I), ("LGPL-3", "GPL-3")),
    (re.compile(r"LGPL-?2\.1|LGPLv2\.1", re.I), ("LGPL-2.1",)),
    (re.compile(r"(?<!L)GPL-?3|(?<!L)GPLv3", re.I), ("GPL-3",)),
    (re.compile(r"(?<!L)GPL-?2|(?<!L)GPLv2", re.I), ("GPL-2",)),
    (re.compile(r"Apache[- ]?(Software )?(License[- ]?)?(v|Version )?2", re.I), ("Apache-2.0",)),
    (re.compile(r"MPL-?2", re.I), ("MPL-2.0",)),
]
COMMON_LICENCES_DIR = Path("/usr/share/common-licenses")
# An editable install of our own project carries no licence file in its metadata: use the checkout's.
OWN_LICENCE = Path(__file__).resolve().parents[1] / "LICENSE"


@dataclass
class Notice:
    name: str
    version: str
    licence: str  # the metadata's licence expression or classifier names
    homepage: str
    texts: list[tuple[str, str]] = field(default_factory=list)  # (file name, text)

    @property
    def complete(self) -> bool:
        return bool(self.texts)


def dependency_closure(root: str = ROOT_DISTRIBUTION) -> list[metadata.Distribution]:
    """`root` and every distribution it needs at run time on this platform (extras not followed)."""
    env = default_environment()
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a marker-less optional dependency that is simply absent here
        seen[name] = dist
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(req.name)
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def _licence_expression(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression") or ""
    if not expression:
        licence = (meta.get("License") or "").strip()
        # Some projects paste the whole text into the field: keep only a one-line summary.
        expression = licence.splitlines()[0][:120] if licence else ""
    classifiers = [
        c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")
    ]
    return "; ".join(x for x in [expression, *classifiers] if x) or "not stated"


def _homepage(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    if meta.get("Home-page"):
        return meta["Home-page"]
    for url in meta.get_all("Project-URL") or []:
        return url.split(",", 1)[-1].strip()
    return ""


def _files_in(dist: metadata.Distribution) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for rel in dist.files or []:
        posix = rel.as_posix()
        if not _LICENCE_FILE.search(posix) or posix.endswith((".py", ".pyc", ".so", ".dll", ".dylib")):
            continue
        try:
            text = Path(dist.locate_file(rel)).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if text.strip() and text not in seen:
            seen.add(text)
            texts.append((posix, text))
    return texts


def _common_texts(expression: str, folder: Path) -> list[tuple[str, str]]:
    texts = []
    for pattern, files in _COMMON_LICENCES:
        if pattern.search(expression):
            for name in files:
                path = folder / name
                if path.is_file() and all(name != t[0] for t in texts):
                    texts.append((name, path.read_text(encoding="utf-8", errors="replace")))
    return texts


def collect(root: str = ROOT_DISTRIBUTION, common: Path = COMMON_LICENCES_DIR) -> list[Notice]:
    notices = []
    for dist in dependency_closure(root):
        expression = _licence_expression(dist)
        notice = Notice(dist.metadata["Name"], dist.version, expression, _homepage(dist), _files_in(dist))
        if not notice.texts and canonicalize_name(notice.name) == ROOT_DISTRIBUTION and OWN_LICENCE.is_file():
            notice.texts = [("LICENSE", OWN_LICENCE.read_text(encoding="utf-8"))]
        if not notice.texts:
            notice.texts = _common_texts(expression, common)
        notices.append(notice)
    return notices


def python_notice() -> Notice:
    version = ".".join(map(str, sys.version_info[:3]))
    candidates = [
        Path(sys.base_prefix) / "LICENSE.txt",
        Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt",
    ]
    texts = [(p.name, p.read_text(encoding="utf-8", errors="replace")) for p in candidates if p.is_file()][:1]
    return Notice("Python", version, "PSF-2.0", "https://www.python.org/", texts)


def render(notices: list[Notice]) -> str:
    rule = "=" * 100
    parts = [
        "VAURA Studio bundles the following software. Each entry gives the project, its version,",
        "its licence as declared by the project, and the licence texts shipped with it.",
        "",
    ]
    for n in notices:
        parts += [rule, f"{n.name} {n.version}", f"Licence: {n.licence}"]
        if n.homepage:
            parts.append(f"Home: {n.homepage}")
        if not n.texts:
            parts.append("(no licence text ships with this distribution; see its home page)")
        for fname, text in n.texts:
            parts += ["", f"--- {fname} ---", text.rstrip()]
        parts.append("")
    return "\n".join(parts) + "\n"


def write_notices(path: Path, root: str = ROOT_DISTRIBUTION) -> list[Notice]:
    """Write the notices file atomically; return the notices (callers report incomplete ones)."""
    notices = [*collect(root), python_notice()]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(notices), encoding="utf-8")
    tmp.replace(path)
    return notices
