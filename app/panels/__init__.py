"""The window's side panels: generation parameters, the takes of the selected region, status widgets."""

from app.panels.parameters import ParametersPanel
from app.panels.status import MessageBar, TaskProgress
from app.panels.takes import TakeRow, TakesPanel

__all__ = ["MessageBar", "ParametersPanel", "TakeRow", "TakesPanel", "TaskProgress"]
