"""Projects that never lose work: the Qt-free project model, its edit commands, storage and recovery.

- `model`: `Project` (clip, settings, lanes, base takes, regions, takes, markers, revision, dirty state)
  and `Project.render_track()`, the track playback and export use;
- `commands`: edits as data; `project.execute(cmd)` returns the inverse command (undo);
- `storage`: `save`, `save_as`, `load` of `Name.vaura/` folders (atomic writes, per-take problems);
- `autosave`: `Autosaver`, `find_recoverable`, `recover` after a crash;
- `relink`: pointing a project at its moved clip, with a content check.
"""

from vaura_core.project.autosave import (
    Autosaver,
    RecoveryInfo,
    discard_recovery,
    find_recoverable,
    recover,
    recovery_root,
)
from vaura_core.project.clip import ClipRef, ClipStatus, full_hash, quick_hash
from vaura_core.project.commands import (
    AddMarker,
    AddTakes,
    Command,
    CommitTake,
    Composite,
    DeleteRegion,
    DeleteTakes,
    NewRegion,
    RemoveMarker,
    RenameProject,
    RenameTake,
    SetBaseTake,
    SetClip,
    SetGain,
    SetLaneMuted,
    SetLaneSolo,
    SetRegionBounds,
    SetRegionMuted,
    SetSettings,
    UpdateMarker,
)
from vaura_core.project.errors import CommandError, ProjectError
from vaura_core.project.model import (
    BASE,
    LANES,
    GenerationSettings,
    LaneState,
    Marker,
    Project,
    Region,
    RenderedTrack,
    RenderProblem,
)
from vaura_core.project.relink import clip_status, relink
from vaura_core.project.storage import LoadReport, TakeProblem, load, save, save_as, write_copy
from vaura_core.project.takes import ProjectTake

__all__ = [
    "BASE",
    "LANES",
    "AddMarker",
    "AddTakes",
    "Autosaver",
    "ClipRef",
    "ClipStatus",
    "Command",
    "CommandError",
    "CommitTake",
    "Composite",
    "DeleteRegion",
    "DeleteTakes",
    "GenerationSettings",
    "LaneState",
    "LoadReport",
    "Marker",
    "NewRegion",
    "Project",
    "ProjectError",
    "ProjectTake",
    "RecoveryInfo",
    "Region",
    "RemoveMarker",
    "RenameProject",
    "RenameTake",
    "RenderProblem",
    "RenderedTrack",
    "SetBaseTake",
    "SetClip",
    "SetGain",
    "SetLaneMuted",
    "SetLaneSolo",
    "SetRegionBounds",
    "SetRegionMuted",
    "SetSettings",
    "TakeProblem",
    "UpdateMarker",
    "clip_status",
    "discard_recovery",
    "find_recoverable",
    "full_hash",
    "load",
    "quick_hash",
    "recover",
    "recovery_root",
    "relink",
    "save",
    "save_as",
    "write_copy",
]
