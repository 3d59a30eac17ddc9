"""Edits as plain data: each command checks itself against the project, applies, and returns its inverse.

`project.execute(cmd)` runs a command and returns the command that undoes it, in the manner of Orange's
paint-data widget: a Qt undo command only needs to hold the pair (`app/` wraps them in QUndoCommand).
Commands hold references to immutable takes, so a deleted region's audio lives on in the inverse command
without a copy. A command that does not fit the project raises `CommandError` before changing anything.

Consecutive commands with the same `merge_key` (gain or bounds drags) merge: the later one replaces the
earlier forward command while the first inverse stays (see `Command.merged_with`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from vaura_core.project.clip import ClipRef
from vaura_core.project.errors import CommandError
from vaura_core.project.model import (
    BASE,
    LANES,
    GenerationSettings,
    LaneName,
    LaneState,
    Marker,
    Project,
    Region,
)
from vaura_core.project.takes import MAX_LABEL, ProjectTake

if TYPE_CHECKING:
    from collections.abc import Iterable


class Command(ABC):
    """Base of every edit. Subclasses are frozen dataclasses."""

    label: ClassVar[str] = "Edit"  # for the Edit menu ("Undo Commit take")

    @abstractmethod
    def apply(self, project: Project) -> Command:
        """Check, change `project`, return the inverse. Use `project.execute`, which counts revisions."""

    @property
    def description(self) -> str:
        """Text for the undo menu."""
        return self.label

    @property
    def merge_key(self) -> Hashable | None:
        """Commands with equal non-None keys merge into one undo step."""
        return None

    def merged_with(self, later: Command) -> Command | None:
        """One command doing `self` then `later`, or None when they do not merge."""
        if self.merge_key is not None and later.merge_key == self.merge_key:
            return later
        return None


# --- helpers -------------------------------------------------------------------------


def _set_group(project: Project, target: str, take_ids: tuple[str, ...], committed: str | None) -> None:
    if target == BASE:
        project.base_take_ids, project.base_take = take_ids, committed
    else:
        _replace_region(
            project, dataclasses.replace(project.region(target), take_ids=take_ids, committed=committed)
        )


def _replace_region(project: Project, region: Region) -> None:
    index = project.region_index(region.id)
    project.regions = (*project.regions[:index], region, *project.regions[index + 1 :])


def _add_to_store(project: Project, takes: Iterable[ProjectTake]) -> None:
    store = dict(project.takes)
    store.update((t.id, t) for t in takes)
    project.takes = MappingProxyType(store)


def _remove_from_store(project: Project, take_ids: Iterable[str]) -> None:
    store = dict(project.takes)
    for take_id in take_ids:
        del store[take_id]
    project.takes = MappingProxyType(store)


def _check_new_takes(project: Project, takes: tuple[ProjectTake, ...], target: str) -> None:
    if not takes:
        raise CommandError("no takes given")
    ids = [t.id for t in takes]
    if len(set(ids)) != len(ids):
        raise CommandError("the same take is given twice")
    for take in takes:
        if not isinstance(take, ProjectTake):
            raise CommandError(f"not a project take: {take!r}")
        if take.id in project.takes:
            raise CommandError(f"take {take.id} is already in the project")
        if target == BASE and not take.is_whole_clip:
            raise CommandError(
                f"take {take.id} covers part of the clip; only whole-clip takes can be the base"
            )


def _check_lane(lane: str) -> None:
    if lane not in LANES:
        raise CommandError(f"unknown lane {lane!r} (lanes: {', '.join(LANES)})")


def _set_lane(project: Project, lane: str, state: LaneState) -> None:
    lanes = dict(project.lanes)
    lanes[lane] = state
    project.lanes = MappingProxyType(lanes)


# --- takes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AddTakes(Command):
    """Add takes to the base (`target=BASE`) or to an existing region; optionally commit one of them.

    `positions` (indices in the final list, ascending) restores deleted takes where they were.
    """

    target: str
    takes: tuple[ProjectTake, ...]
    positions: tuple[int, ...] | None = None
    commit: str | None = None
    label: ClassVar[str] = "Add takes"

    def apply(self, project: Project) -> Command:
        current = list(project.takes_of(self.target))
        _check_new_takes(project, self.takes, self.target)
        ids = tuple(t.id for t in self.takes)
        if self.commit is not None and self.commit not in ids:
            raise CommandError(f"take {self.commit} to commit is not among the added takes")
        if self.positions is None:
            current.extend(ids)
        else:
            if len(self.positions) != len(ids) or list(self.positions) != sorted(self.positions):
                raise CommandError("positions must be ascending, one per take")
            for position, take_id in zip(self.positions, ids, strict=True):
                if not 0 <= position <= len(current):
                    raise CommandError(f"position {position} is outside the list of takes")
                current.insert(position, take_id)
        previous = project.committed_of(self.target)
        _add_to_store(project, self.takes)
        _set_group(project, self.target, tuple(current), self.commit if self.commit is not None else previous)
        delete = DeleteTakes(self.target, ids)
        if self.commit is None:
            return delete
        return Composite((delete, CommitTake(self.target, previous)))


@dataclass(frozen=True)
class DeleteTakes(Command):
    """Remove takes from the base or a region; a committed one is uncommitted."""

    target: str
    take_ids: tuple[str, ...]
    label: ClassVar[str] = "Delete take"

    def apply(self, project: Project) -> Command:
        current = project.takes_of(self.target)
        if not self.take_ids or len(set(self.take_ids)) != len(self.take_ids):
            raise CommandError("no takes, or the same take twice, to delete")
        for take_id in self.take_ids:
            if take_id not in current:
                raise CommandError(f"take {take_id} does not belong to {self.target}")
        doomed = set(self.take_ids)
        positions = tuple(i for i, take_id in enumerate(current) if take_id in doomed)
        removed = tuple(project.takes[current[i]] for i in positions)
        previous = project.committed_of(self.target)
        uncommit = previous in doomed
        _set_group(
            project,
            self.target,
            tuple(t for t in current if t not in doomed),
            None if uncommit else previous,
        )
        _remove_from_store(project, doomed)
        return AddTakes(self.target, removed, positions, commit=previous if uncommit else None)


@dataclass(frozen=True)
class CommitTake(Command):
    """Make `take_id` the take the track uses for the base or a region (None: use none)."""

    target: str
    take_id: str | None
    label: ClassVar[str] = "Commit take"

    def apply(self, project: Project) -> Command:
        current = project.takes_of(self.target)
        if self.take_id is not None and self.take_id not in current:
            raise CommandError(f"take {self.take_id} does not belong to {self.target}")
        previous = project.committed_of(self.target)
        _set_group(project, self.target, current, self.take_id)
        return CommitTake(self.target, previous)


@dataclass(frozen=True)
class SetBaseTake(Command):
    """Choose the whole-clip take the track starts from (CommitTake on the base)."""

    take_id: str | None
    label: ClassVar[str] = "Choose base take"

    def apply(self, project: Project) -> Command:
        previous = project.base_take
        CommitTake(BASE, self.take_id).apply(project)
        return SetBaseTake(previous)


@dataclass(frozen=True)
class RenameTake(Command):
    take_id: str
    text: str
    label: ClassVar[str] = "Rename take"

    def apply(self, project: Project) -> Command:
        old = project.take(self.take_id)
        _add_to_store(project, [old.with_label(self.text)])
        return RenameTake(self.take_id, old.label)


# --- regions -------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRegion(Command):
    """Create a region holding new takes (`region.take_ids` lists them in order), at `index` or last."""

    region: Region
    takes: tuple[ProjectTake, ...]
    index: int | None = None
    label: ClassVar[str] = "New region"

    def apply(self, project: Project) -> Command:
        region = self.region
        if any(r.id == region.id for r in project.regions):
            raise CommandError(f"region {region.id} already exists")
        if tuple(t.id for t in self.takes) != region.take_ids:
            raise CommandError(f"region {region.id}: its take list does not match the takes given")
        if self.takes:
            _check_new_takes(project, self.takes, region.id)
        project.check_time("region start", region.start)
        project.check_time("region end", region.end)
        index = len(project.regions) if self.index is None else self.index
        if not 0 <= index <= len(project.regions):
            raise CommandError(f"region index {index} is out of range")
        _add_to_store(project, self.takes)
        project.regions = (*project.regions[:index], region, *project.regions[index:])
        return DeleteRegion(region.id)


@dataclass(frozen=True)
class DeleteRegion(Command):
    """Remove a region and its takes (the inverse brings both back, in place)."""

    region_id: str
    label: ClassVar[str] = "Delete region"

    def apply(self, project: Project) -> Command:
        index = project.region_index(self.region_id)
        region = project.regions[index]
        takes = tuple(project.takes[t] for t in region.take_ids)
        project.regions = (*project.regions[:index], *project.regions[index + 1 :])
        _remove_from_store(project, region.take_ids)
        return NewRegion(region, takes, index)


@dataclass(frozen=True)
class SetRegionBounds(Command):
    region_id: str
    start: float
    end: float
    label: ClassVar[str] = "Move region"

    def apply(self, project: Project) -> Command:
        old = project.region(self.region_id)
        project.check_time("region start", self.start)
        project.check_time("region end", self.end)
        _replace_region(project, dataclasses.replace(old, start=float(self.start), end=float(self.end)))
        return SetRegionBounds(self.region_id, old.start, old.end)

    @property
    def merge_key(self) -> Hashable:
        return ("region-bounds", self.region_id)


@dataclass(frozen=True)
class SetRegionMuted(Command):
    region_id: str
    muted: bool
    label: ClassVar[str] = "Mute region"

    def apply(self, project: Project) -> Command:
        old = project.region(self.region_id)
        _replace_region(project, dataclasses.replace(old, muted=bool(self.muted)))
        return SetRegionMuted(self.region_id, old.muted)


# --- lanes, markers, settings, clip -----------------------------------------------------


@dataclass(frozen=True)
class SetGain(Command):
    lane: LaneName
    gain_db: float
    label: ClassVar[str] = "Change gain"

    def apply(self, project: Project) -> Command:
        _check_lane(self.lane)
        old = project.lanes[self.lane]
        _set_lane(project, self.lane, dataclasses.replace(old, gain_db=self.gain_db))
        return SetGain(self.lane, old.gain_db)

    @property
    def merge_key(self) -> Hashable:
        return ("gain", self.lane)


@dataclass(frozen=True)
class SetLaneMuted(Command):
    lane: LaneName
    muted: bool
    label: ClassVar[str] = "Mute lane"

    def apply(self, project: Project) -> Command:
        _check_lane(self.lane)
        old = project.lanes[self.lane]
        _set_lane(project, self.lane, dataclasses.replace(old, muted=bool(self.muted)))
        return SetLaneMuted(self.lane, old.muted)


@dataclass(frozen=True)
class SetLaneSolo(Command):
    lane: LaneName
    solo: bool
    label: ClassVar[str] = "Solo lane"

    def apply(self, project: Project) -> Command:
        _check_lane(self.lane)
        old = project.lanes[self.lane]
        _set_lane(project, self.lane, dataclasses.replace(old, solo=bool(self.solo)))
        return SetLaneSolo(self.lane, old.solo)


@dataclass(frozen=True)
class AddMarker(Command):
    marker: Marker
    index: int | None = None
    label: ClassVar[str] = "Add marker"

    def apply(self, project: Project) -> Command:
        if any(m.id == self.marker.id for m in project.markers):
            raise CommandError(f"marker {self.marker.id} already exists")
        project.check_time("marker time", self.marker.time)
        index = len(project.markers) if self.index is None else self.index
        if not 0 <= index <= len(project.markers):
            raise CommandError(f"marker index {index} is out of range")
        project.markers = (*project.markers[:index], self.marker, *project.markers[index:])
        return RemoveMarker(self.marker.id)


@dataclass(frozen=True)
class RemoveMarker(Command):
    marker_id: str
    label: ClassVar[str] = "Remove marker"

    def apply(self, project: Project) -> Command:
        for index, marker in enumerate(project.markers):
            if marker.id == self.marker_id:
                project.markers = (*project.markers[:index], *project.markers[index + 1 :])
                return AddMarker(marker, index)
        raise CommandError(f"marker {self.marker_id} is not in the project")


@dataclass(frozen=True)
class UpdateMarker(Command):
    """Move or rename a marker (matched by id)."""

    marker: Marker
    label: ClassVar[str] = "Edit marker"

    def apply(self, project: Project) -> Command:
        project.check_time("marker time", self.marker.time)
        for index, old in enumerate(project.markers):
            if old.id == self.marker.id:
                project.markers = (*project.markers[:index], self.marker, *project.markers[index + 1 :])
                return UpdateMarker(old)
        raise CommandError(f"marker {self.marker.id} is not in the project")

    @property
    def merge_key(self) -> Hashable:
        return ("marker", self.marker.id)


@dataclass(frozen=True)
class SetSettings(Command):
    settings: GenerationSettings
    label: ClassVar[str] = "Change generation settings"

    def apply(self, project: Project) -> Command:
        if not isinstance(self.settings, GenerationSettings):
            raise CommandError("settings must be GenerationSettings")
        old = project.settings
        project.settings = self.settings
        return SetSettings(old)

    @property
    def merge_key(self) -> Hashable:
        return ("settings",)


@dataclass(frozen=True)
class SetClip(Command):
    """Point the project at another file for its clip (see `vaura_core.project.relink`)."""

    clip: ClipRef
    label: ClassVar[str] = "Relink clip"

    def apply(self, project: Project) -> Command:
        old = project.clip
        project.clip = self.clip
        return SetClip(old)


@dataclass(frozen=True)
class RenameProject(Command):
    name: str
    label: ClassVar[str] = "Rename project"

    def apply(self, project: Project) -> Command:
        if not self.name.strip() or len(self.name) > MAX_LABEL:
            raise CommandError("a project name must be 1 to 1000 characters")
        old = project.name
        project.name = self.name
        return RenameProject(old)


@dataclass(frozen=True)
class Composite(Command):
    """Several commands as one step; if one fails, those already applied are undone."""

    commands: tuple[Command, ...]
    title: str = "Edit"

    @property
    def description(self) -> str:
        return self.title

    def apply(self, project: Project) -> Command:
        inverses: list[Command] = []
        try:
            for command in self.commands:
                inverses.append(command.apply(project))
        except BaseException:
            for inverse in reversed(inverses):
                inverse.apply(project)
            raise
        return Composite(tuple(reversed(inverses)), self.title)
