"""Render resources/icons/vaura-studio.svg into the raster icons the installers need.

Writes vaura-studio.png (512 px, Linux .desktop and the window icon), vaura-studio.ico (Windows,
16-256 px) and vaura-studio.icns (macOS). Run after editing the SVG:
`QT_QPA_PLATFORM=offscreen python scripts/make_icons.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QImageWriter, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SVG = ICONS / "vaura-studio.svg"


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def write(image: QImage, path: Path, fmt: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    writer = QImageWriter(str(tmp), fmt.encode())
    if not writer.write(image):
        raise SystemExit(f"{path}: cannot write {fmt}: {writer.errorString()}")
    tmp.replace(path)


def main() -> int:
    QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"{SVG}: not a valid SVG", file=sys.stderr)
        return 1
    write(render(renderer, 512), ICONS / "vaura-studio.png", "png")
    # Qt's ICO and ICNS writers store the one image given; 256 px is the largest ICO entry
    # Windows uses, and macOS scales the 512 px ICNS entry down itself.
    write(render(renderer, 256), ICONS / "vaura-studio.ico", "ico")
    write(render(renderer, 512), ICONS / "vaura-studio.icns", "icns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
