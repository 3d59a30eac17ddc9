"""The generation parameters panel: model, device and the sampling controls, with V-AURA's defaults.

The panel only edits values; the window reads them when it generates (`generation_settings`,
`sampling_params`, `draw_seeds`) and stores them in the settings and the project.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from vaura_core.engine.candidates import DEFAULT_CANDIDATES, MAX_CANDIDATES
from vaura_core.engine.chains import DEFAULT_CHAINS
from vaura_core.generation.sampling import SamplingParams
from vaura_core.project.model import GenerationSettings

MAX_SEED = 2**31 - 1
MAX_VARIATIONS = 8
SEGMENT_SECONDS = 0.64  # V-AURA's segment; the stride is a whole number of them


def _die_icon(size: int = 16) -> QIcon:
    """A die showing five: the seed button's icon (drawn, so it needs no emoji font)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor("#15161a"))
    painter.setBrush(QColor("#e8eaee"))
    painter.drawRoundedRect(QRectF(1, 1, size - 2, size - 2), 3, 3)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#15161a"))
    r = size / 10
    for fx, fy in ((0.3, 0.3), (0.7, 0.3), (0.5, 0.5), (0.3, 0.7), (0.7, 0.7)):
        painter.drawEllipse(QPointF(fx * size, fy * size), r, r)
    painter.end()
    return QIcon(pixmap)


def _lock_icon(locked: bool, size: int = 16) -> QIcon:
    """A padlock, closed when the seed is locked (drawn, so it needs no emoji font)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    ink = QColor("#111111" if locked else "#d7d9de")
    pen = QPen(ink, 1.8)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    shackle = QRectF(4.5, 1.5, 7, 8) if locked else QRectF(7.5, 0.5, 7, 8)
    painter.drawArc(shackle, 0, 180 * 16)
    painter.drawLine(QPointF(shackle.left(), shackle.center().y()), QPointF(shackle.left(), 7.5))
    if locked:
        painter.drawLine(QPointF(shackle.right(), shackle.center().y()), QPointF(shackle.right(), 7.5))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(ink)
    painter.drawRoundedRect(QRectF(2.5, 7, 11, 8), 1.5, 1.5)
    painter.end()
    return QIcon(pixmap)


class ParametersPanel(QFrame):
    """Signals: settings_changed(GenerationSettings) on any edit; model_changed(name) and
    device_changed(device) when the user picks another model or device."""

    settings_changed = Signal(object)
    model_changed = Signal(str)
    device_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("parametersPanel")
        self._updating = False
        self._rng = random.SystemRandom()

        title = QLabel("GENERATION", self)
        title.setObjectName("panelTitle")

        self.model_combo = QComboBox(self)
        self.model_combo.setToolTip(
            "The V-AURA model that generates the sound. Models are loaded in the background; "
            "`vaura models` installs more."
        )
        self.device_combo = QComboBox(self)
        self.device_combo.setToolTip(
            "Where the model runs: auto picks a GPU when there is one. On the CPU, generation is much slower."
        )

        self.temperature = QDoubleSpinBox(self)
        self.temperature.setRange(0.05, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.temperature.setToolTip(
            "Sampling temperature. Lower is more predictable, higher more varied (V-AURA's default: 0.95)."
        )
        self.top_k = QSpinBox(self)
        self.top_k.setRange(0, 1024)
        self.top_k.setSingleStep(8)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip("Sample only among the k most likely codes at each step (0: off; default 128).")
        self.top_p = QDoubleSpinBox(self)
        self.top_p.setRange(0.0, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setSpecialValueText("off")
        self.top_p.setToolTip(
            "Nucleus sampling: keep the most likely codes up to this probability mass (0: off, the default)."
        )
        self.guidance = QDoubleSpinBox(self)
        self.guidance.setRange(0.0, 15.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(1)
        self.guidance.setToolTip(
            "Classifier-free guidance: how strongly the sound follows the picture "
            "(default 6.0; 1 or less: off)."
        )

        self.seed = QSpinBox(self)
        self.seed.setRange(0, MAX_SEED)
        self.seed.setToolTip("The seed of the first variation; the others use the following numbers.")
        self.seed_lock = QToolButton(self)
        self.seed_lock.setCheckable(True)
        self.seed_lock.setObjectName("seedLock")
        self.seed_lock.setIcon(_lock_icon(locked=False))
        self.seed_lock.setToolTip(
            "Locked: every generation uses this seed, so it can be reproduced. "
            "Unlocked: a new random seed each time (the box shows the last one used)."
        )
        self.dice = QToolButton(self)
        self.dice.setObjectName("diceButton")
        self.dice.setIcon(_die_icon())
        self.dice.setToolTip("Roll a new random seed")
        seed_row = QHBoxLayout()
        seed_row.setSpacing(4)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_lock)
        seed_row.addWidget(self.dice)

        self.variations = QSpinBox(self)
        self.variations.setRange(1, MAX_VARIATIONS)
        self.variations.setToolTip(
            "How many takes one generation makes (one batch, each with its own seed); "
            "audition them in the Takes panel and commit the best."
        )
        self.stride = QComboBox(self)
        for segments in (1, 2, 3):
            self.stride.addItem(f"{segments * SEGMENT_SECONDS:.2f} s", segments)
        self.stride.setToolTip(
            "How far each 2.56 s generation window advances. Shorter strides give each window more "
            "context (smoother, slower); longer ones are faster."
        )
        self.chains = QComboBox(self)
        for count, label in ((1, "Continuous"), (2, "2 in parallel"), (4, "4 in parallel")):
            self.chains.addItem(label, count)
        self.chains.setCurrentIndex(self.chains.findData(DEFAULT_CHAINS))
        self.chains.setToolTip(
            "How a long clip is generated. In parallel (the default, 4): the clip is cut into "
            "stretches generated side by side, each handing over to the next at a quiet moment once "
            "the next has settled; a 10 s clip is ready about 1.6 times as fast. Continuous: every window "
            "hears the audio before it."
        )

        self.candidates = QSpinBox(self)
        self.candidates.setRange(1, MAX_CANDIDATES)
        self.candidates.setValue(DEFAULT_CANDIDATES)
        self.candidates.setToolTip(
            "How many times each stretch is sampled; the one whose hits land best on the impacts the "
            f"model sees in the picture is kept (default {DEFAULT_CANDIDATES}; more is slower). Models "
            "without impact cues sample once."
        )

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)
        form.addRow("Model", self.model_combo)
        form.addRow("Device", self.device_combo)
        form.addRow(self._separator())
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-k", self.top_k)
        form.addRow("Top-p", self.top_p)
        form.addRow("Guidance", self.guidance)
        form.addRow("Seed", seed_row)
        form.addRow("Variations", self.variations)
        form.addRow("Stride", self.stride)
        form.addRow("Long clips", self.chains)
        form.addRow("Candidates", self.candidates)

        self._buttons = QVBoxLayout()
        self._buttons.setSpacing(6)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addSpacing(4)
        layout.addLayout(self._buttons)
        layout.addStretch(1)

        self.set_generation_settings(GenerationSettings())
        for spin in (self.temperature, self.top_p, self.guidance):
            spin.valueChanged.connect(self._emit_settings)
        for box in (self.top_k, self.seed, self.variations, self.candidates):
            box.valueChanged.connect(self._emit_settings)
        self.stride.currentIndexChanged.connect(self._emit_settings)
        self.chains.currentIndexChanged.connect(self._emit_settings)
        self.seed_lock.toggled.connect(self._on_lock_toggled)
        self.dice.clicked.connect(self.roll_seed)
        self.model_combo.activated.connect(self._on_model_activated)
        self.device_combo.activated.connect(self._on_device_activated)

    def _separator(self) -> QFrame:
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setObjectName("separator")
        return line

    def add_action_button(self, action: QAction) -> QToolButton:
        """A full-width button for a window action (Generate, Regenerate selection)."""
        button = QToolButton(self)
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        button.setObjectName("panelAction")
        self._buttons.addWidget(button)
        return button

    # --- values -------------------------------------------------------------------------------------

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(
            model=self.model_name() or GenerationSettings().model,
            temperature=round(self.temperature.value(), 4),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4),
            cfg_scale=round(self.guidance.value(), 4),
            seed_mode="locked" if self.seed_lock.isChecked() else "random",
            seed=self.seed.value(),
            variations=self.variations.value(),
            stride_segments=int(self.stride.currentData() or 1),
            chains=int(self.chains.currentData() or 1),
            candidates=self.candidates.value(),
        )

    def set_generation_settings(self, settings: GenerationSettings) -> None:
        """Show `settings` (the model is chosen separately, with `set_models`). Emits nothing."""
        self._updating = True
        try:
            self.temperature.setValue(settings.temperature)
            self.top_k.setValue(settings.top_k)
            self.top_p.setValue(settings.top_p)
            self.guidance.setValue(settings.cfg_scale)
            self.seed.setValue(min(settings.seed, MAX_SEED))
            self.seed_lock.setChecked(settings.seed_mode == "locked")
            self.variations.setValue(min(settings.variations, MAX_VARIATIONS))
            index = self.stride.findData(settings.stride_segments)
            self.stride.setCurrentIndex(max(0, index))
            index = self.chains.findData(settings.chains)
            if index < 0:  # a value set elsewhere (a project, the command line): show it as it is
                self.chains.addItem(f"{settings.chains} in parallel", settings.chains)
                index = self.chains.count() - 1
            self.chains.setCurrentIndex(index)
            self.candidates.setValue(settings.candidates)
        finally:
            self._updating = False

    def sampling_params(self) -> SamplingParams:
        s = self.generation_settings()
        return SamplingParams(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, cfg_scale=s.cfg_scale)

    def variation_count(self) -> int:
        return self.variations.value()

    def set_variations(self, count: int) -> None:
        self.variations.setValue(count)

    def stride_segments(self) -> int:
        return int(self.stride.currentData() or 1)

    def chain_count(self) -> int:
        return int(self.chains.currentData() or 1)

    def candidate_count(self) -> int:
        return self.candidates.value()

    def draw_seeds(self, count: int | None = None) -> list[int]:
        """Seeds for the next generation: the locked seed and the following numbers, or fresh random
        ones (the box then shows the first, so a good take's seed can be locked and reused)."""
        count = self.variation_count() if count is None else count
        if self.seed_lock.isChecked():
            first = self.seed.value()
        else:
            first = self._rng.randrange(0, MAX_SEED - MAX_VARIATIONS)
            self._updating = True
            try:
                self.seed.setValue(first)
            finally:
                self._updating = False
        return [(first + i) % (MAX_SEED + 1) for i in range(count)]

    @Slot()
    def roll_seed(self) -> None:
        self.seed.setValue(self._rng.randrange(0, MAX_SEED - MAX_VARIATIONS))

    # --- model and device ---------------------------------------------------------------------------

    def set_models(self, names: Sequence[str], current: str, missing: Iterable[str] = ()) -> None:
        """Offer `names` (installed models); `missing` ones are listed but cannot be chosen."""
        missing = set(missing)
        self.model_combo.blockSignals(True)
        try:
            self.model_combo.clear()
            for name in dict.fromkeys([*names, current]):
                self.model_combo.addItem(name + (" (not installed)" if name in missing else ""), name)
                if name in missing:
                    item = self.model_combo.model().item(self.model_combo.count() - 1)  # type: ignore[attr-defined]
                    item.setEnabled(False)
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(current)))
        finally:
            self.model_combo.blockSignals(False)

    def model_name(self) -> str:
        return str(self.model_combo.currentData() or "")

    def set_devices(self, devices: Sequence[str], current: str) -> None:
        self.device_combo.blockSignals(True)
        try:
            self.device_combo.clear()
            for device in dict.fromkeys([*devices, current]):
                self.device_combo.addItem(device, device)
            self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(current)))
        finally:
            self.device_combo.blockSignals(False)

    def device(self) -> str:
        return str(self.device_combo.currentData() or "auto")

    # --- slots --------------------------------------------------------------------------------------

    @Slot()
    def _emit_settings(self) -> None:
        if not self._updating:
            self.settings_changed.emit(self.generation_settings())

    @Slot(bool)
    def _on_lock_toggled(self, locked: bool) -> None:
        self.seed_lock.setIcon(_lock_icon(locked))
        self._emit_settings()

    @Slot(int)
    def _on_model_activated(self, index: int) -> None:
        name = self.model_combo.itemData(index)
        if name:
            self.model_changed.emit(str(name))
            self._emit_settings()

    @Slot(int)
    def _on_device_activated(self, index: int) -> None:
        device = self.device_combo.itemData(index)
        if device:
            self.device_changed.emit(str(device))
