"""Colours and the style sheet of the timeline: a dark DAW look with clear, distinct accents."""

from __future__ import annotations

from PySide6.QtGui import QColor

# Surfaces, from the deepest to the most raised.
BACKGROUND = QColor("#17181b")
LANE_BACKGROUND = QColor("#1d1f23")
LANE_BACKGROUND_ALT = QColor("#202227")
HEADER_BACKGROUND = QColor("#26282d")
RULER_BACKGROUND = QColor("#2a2c32")
BORDER = QColor("#0e0f11")
DIVIDER = QColor("#33363d")

TEXT = QColor("#d7d9de")
TEXT_DIM = QColor("#8b909a")
TEXT_FAINT = QColor("#5d626c")
TICK = QColor("#7b808a")
TICK_MINOR = QColor("#4a4e56")
GRID_LINE = QColor(255, 255, 255, 18)

PLAYHEAD = QColor("#ff4f4f")
SELECTION_FILL = QColor(90, 160, 255, 46)
SELECTION_EDGE = QColor(120, 180, 255, 200)
SELECTION_RULER = QColor(90, 160, 255, 120)
AUDITION = QColor("#ffd54a")
COUNTER = QColor("#7ee0a8")

ORIGINAL_WAVE = QColor("#8fa3bf")
ORIGINAL_WAVE_MUTED = QColor("#4a5261")
GENERATED_WAVE = QColor("#56d6c4")
GENERATED_WAVE_MUTED = QColor("#32615b")
WAVE_ON_REGION = QColor("#e6ecf1")
WAVE_ON_REGION_MUTED = QColor("#7d858f")

# Take colours, one per region's active take (RegionView.colour indexes this list, wrapping around).
TAKE_PALETTE: tuple[QColor, ...] = tuple(
    QColor(c)
    for c in (
        "#3fa7d6",  # blue
        "#f29e4c",  # orange
        "#59cd90",  # green
        "#ee6352",  # red
        "#a78bfa",  # violet
        "#f7d154",  # yellow
        "#ff7eb6",  # pink
        "#2ec4b6",  # teal
    )
)


def take_colour(index: int) -> QColor:
    """The colour of take colour index `index` (any integer; the palette wraps)."""
    return QColor(TAKE_PALETTE[index % len(TAKE_PALETTE)])


def with_alpha(colour: QColor, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


STYLE_SHEET = f"""
#timeline {{ background: {BACKGROUND.name()}; }}
#timeline QLabel {{ color: {TEXT.name()}; }}
#timeline QFrame#laneHeader {{
    background: {HEADER_BACKGROUND.name()};
    border-bottom: 1px solid {BORDER.name()};
    border-right: 1px solid {BORDER.name()};
}}
#timeline QLabel#laneName {{ font-weight: 600; }}
#timeline QLabel#laneHint, #timeline QLabel#gainLabel {{ color: {TEXT_DIM.name()}; }}
#timeline QLabel#counter {{
    color: {COUNTER.name()};
    font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace;
    font-size: 15px;
    font-weight: 600;
}}
#timeline QLabel#counterSeconds {{
    color: {TEXT_DIM.name()};
    font-family: "DejaVu Sans Mono", "Menlo", "Consolas", monospace;
}}
#timeline QToolButton {{
    color: {TEXT.name()};
    background: #33363d;
    border: 1px solid #15161a;
    border-radius: 3px;
    padding: 1px 6px;
    min-width: 16px;
}}
#timeline QToolButton:hover {{ background: #3d4149; }}
#timeline QToolButton:disabled {{ color: {TEXT_FAINT.name()}; background: #2a2c31; }}
#timeline QToolButton#muteButton:checked {{ background: #d9a21b; color: #111; border-color: #8a6510; }}
#timeline QToolButton#soloButton:checked {{ background: #3cb371; color: #111; border-color: #1f6b40; }}
#timeline QToolButton#followButton:checked {{ background: #2f6fb3; color: #fff; border-color: #1b4470; }}
#timeline QComboBox {{
    color: {TEXT.name()};
    background: #33363d;
    border: 1px solid #15161a;
    border-radius: 3px;
    padding: 1px 6px;
}}
#timeline QComboBox QAbstractItemView {{
    color: {TEXT.name()};
    background: #2a2c32;
    selection-background-color: #2f6fb3;
}}
#timeline QSlider::groove:horizontal {{ height: 4px; background: #121316; border-radius: 2px; }}
#timeline QSlider::sub-page:horizontal {{ background: #5d7fa8; border-radius: 2px; }}
#timeline QSlider::handle:horizontal {{
    width: 10px; margin: -5px 0; border-radius: 5px; background: #d7d9de;
}}
#timeline QSlider::handle:horizontal:disabled {{ background: #555a63; }}
#timeline QScrollBar:horizontal {{ background: {BACKGROUND.name()}; height: 12px; margin: 0; }}
#timeline QScrollBar::handle:horizontal {{
    background: #3d4149; border-radius: 4px; min-width: 24px; margin: 2px;
}}
#timeline QScrollBar::handle:horizontal:hover {{ background: #4d525c; }}
#timeline QScrollBar::add-line:horizontal, #timeline QScrollBar::sub-line:horizontal {{ width: 0; }}
#timeline QFrame#toolbar {{ background: {HEADER_BACKGROUND.name()}; border-top: 1px solid {BORDER.name()}; }}
"""
