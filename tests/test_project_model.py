"""The project model: commands and their inverses, merging drags, revisions, the rendered track."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaura_core.project import (
    BASE,
    AddMarker,
    AddTakes,
    ClipRef,
    Command,
    CommandError,
    CommitTake,
    Composite,
    DeleteRegion,
    DeleteTakes,
    GenerationSettings,
    Marker,
    NewRegion,
    Project,
    ProjectTake,
    Region,
    RemoveMarker,
    RenameTake,
    SetBaseTake,
    SetGain,
    SetLaneMuted,
    SetLaneSolo,
    SetRegionBounds,
    SetRegionMuted,
    SetSettings,
    UpdateMarker,
)
from vaura_core.project.schema import to_document
from vaura_core.project.synthetic import base_take, demo_project, region_take

DURATION = 3.0


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(50_000))
    return path


@pytest.fixture
def project(clip: Path) -> Project:
    return demo_project(clip, duration=DURATION, regions=2, variations=3)


def state(project: Project) -> dict[str, Any]:
    """Everything a command may change, as plain data (the identity of take arrays included, revision not)."""
    doc = to_document(project, Path("/"))
    del doc["saved_at"], doc["revision"]
    doc["arrays"] = {t.id: (id(t.audio), id(t.codes)) for t in project.takes.values()}
    return doc


def commands_for(project: Project) -> list[Command]:
    """One command of every kind, valid for the demo project."""
    first, second = project.regions
    base = project.base_take
    new_base = base_take(DURATION, seed=7)
    extra = region_take(DURATION, first.start, first.end, seed=99)
    fresh = tuple(region_take(DURATION, 2.0, 2.5, seed=s) for s in (1, 2))
    region = Region.new(2.0, 2.5, take_ids=tuple(t.id for t in fresh))
    marker = project.markers[0]
    assert base is not None
    return [
        AddTakes(first.id, (extra,)),
        AddTakes(first.id, (extra,), commit=extra.id),
        AddTakes(BASE, (new_base,), commit=new_base.id),
        DeleteTakes(first.id, (first.take_ids[1],)),
        DeleteTakes(first.id, (first.take_ids[0], first.take_ids[2])),
        DeleteTakes(BASE, (base,)),
        CommitTake(first.id, first.take_ids[2]),
        CommitTake(second.id, None),
        SetBaseTake(None),
        RenameTake(first.take_ids[0], "the good one"),
        NewRegion(region, fresh),
        NewRegion(dataclasses.replace(region, committed=fresh[0].id), fresh, index=0),
        DeleteRegion(first.id),
        DeleteRegion(second.id),
        SetRegionBounds(first.id, 0.25, 0.75),
        SetRegionMuted(first.id, True),
        SetGain("original", -12.0),
        SetGain("generated", 3.5),
        SetLaneMuted("original", False),
        SetLaneSolo("generated", True),
        AddMarker(Marker.new(2.5, "door")),
        AddMarker(Marker.new(0.0, "start"), index=0),
        RemoveMarker(marker.id),
        UpdateMarker(dataclasses.replace(marker, time=2.75, label="moved")),
        SetSettings(GenerationSettings(temperature=0.7, seed_mode="locked", seed=42, variations=4)),
        Composite((CommitTake(first.id, first.take_ids[0]), SetGain("generated", -3.0))),
    ]


def test_every_command_is_undone_exactly_by_its_inverse(clip: Path) -> None:
    for index in range(len(commands_for(demo_project(clip, duration=DURATION)))):
        project = demo_project(clip, duration=DURATION)
        command = commands_for(project)[index]
        before = state(project)
        revision = project.revision

        inverse = project.execute(command)
        after = state(project)
        assert after != before, f"{command.label} changed nothing"
        assert project.revision == revision + 1

        redo = project.execute(inverse)
        assert state(project) == before, f"undoing {command!r} did not restore the project"
        assert project.revision == revision + 2

        project.execute(redo)
        assert state(project) == after, f"redoing {command!r} did not reapply it"


def test_undo_keeps_the_same_takes_without_copying_audio(project: Project) -> None:
    region = project.regions[0]
    takes = [project.takes[t] for t in region.take_ids]
    inverse = project.execute(DeleteRegion(region.id))
    assert isinstance(inverse, NewRegion)
    assert all(a is b for a, b in zip(inverse.takes, takes, strict=True))
    project.execute(inverse)
    for take in takes:
        assert project.takes[take.id] is take
        assert take.audio is not None and not take.audio.flags.writeable
        assert take.codes is not None and not take.codes.flags.writeable


def test_delete_a_committed_take_and_undo_restores_order_and_commit(project: Project) -> None:
    region = project.regions[0]
    committed = region.committed
    assert committed == region.take_ids[1]
    inverse = project.execute(DeleteTakes(region.id, (committed,)))
    assert project.region(region.id).committed is None
    assert project.region(region.id).take_ids == (region.take_ids[0], region.take_ids[2])
    assert committed not in project.takes
    project.execute(inverse)
    assert project.region(region.id) == region


def test_commit_inverse_restores_the_previous_take(project: Project) -> None:
    region = project.regions[1]
    previous = region.committed
    inverse = project.execute(CommitTake(region.id, region.take_ids[0]))
    assert project.region(region.id).committed == region.take_ids[0]
    assert inverse == CommitTake(region.id, previous)


def test_invalid_commands_change_nothing(project: Project) -> None:
    region = project.regions[0]
    partial = region_take(DURATION, 1.0, 1.5, seed=3)
    existing = project.takes[region.take_ids[0]]
    bad: list[Command] = [
        CommitTake("r-unknown", None),
        CommitTake(region.id, project.regions[1].take_ids[0]),
        AddTakes(region.id, (existing,)),
        AddTakes(BASE, (partial,)),
        AddTakes(region.id, ()),
        AddTakes(region.id, (partial,), commit="t-other"),
        DeleteTakes(region.id, ("t-nope",)),
        NewRegion(Region.new(2.0, DURATION + 1.0), ()),
        SetRegionBounds(region.id, 2.0, 1.0),
        SetRegionBounds(region.id, -1.0, 1.0),
        SetGain("original", 1000.0),
        SetGain("original", float("nan")),
        SetGain("drums", 0.0),  # type: ignore[arg-type]
        RemoveMarker("m-nope"),
        AddMarker(Marker.new(DURATION + 5.0)),
        # The second step fails: the first (valid) one must be rolled back.
        Composite((SetGain("generated", -6.0), CommitTake(region.id, "t-nope"))),
    ]
    for command in bad:
        before, revision = state(project), project.revision
        with pytest.raises(CommandError):
            project.execute(command)
        assert state(project) == before, f"{command!r} left a change behind"
        assert project.revision == revision


def test_gain_drags_merge_into_one_undo_step(project: Project) -> None:
    # What a QUndoCommand adapter does: keep the first inverse, merge the forward commands.
    original = project.lanes["generated"].gain_db
    first = SetGain("generated", -1.0)
    undo = project.execute(first)
    forward: Command = first
    for value in (-2.0, -3.5, -6.0):
        step = SetGain("generated", value)
        project.execute(step)
        merged = forward.merged_with(step)
        assert merged is not None
        forward = merged
    assert project.lanes["generated"].gain_db == -6.0
    assert forward == SetGain("generated", -6.0)
    project.execute(undo)
    assert project.lanes["generated"].gain_db == original
    project.execute(forward)
    assert project.lanes["generated"].gain_db == -6.0

    assert SetGain("generated", 0.0).merged_with(SetGain("original", 0.0)) is None
    assert SetGain("generated", 0.0).merged_with(SetLaneMuted("generated", True)) is None
    assert CommitTake(BASE, None).merged_with(CommitTake(BASE, None)) is None
    region = project.regions[0].id
    assert SetRegionBounds(region, 0.1, 0.5).merged_with(SetRegionBounds(region, 0.2, 0.6)) == (
        SetRegionBounds(region, 0.2, 0.6)
    )


def test_revision_and_dirty(clip: Path) -> None:
    project = Project.new(ClipRef.from_file(clip, duration=DURATION, frame_rate=24.0))
    assert project.revision == 0 and not project.dirty
    undo = project.execute(SetGain("original", -3.0))
    assert project.revision == 1 and project.dirty
    project.saved_revision = project.revision
    assert not project.dirty
    project.execute(undo)
    assert project.revision == 2 and project.dirty  # undo is a change since the save


def test_render_is_the_base_with_committed_takes_spliced_in_order(project: Project) -> None:
    from vaura_core.engine.engine import Track, apply_take

    assert project.base_take is not None
    base = project.takes[project.base_take]
    assert base.codes is not None and base.audio is not None
    expected = Track(codes=base.codes, audio=base.audio, sample_rate=project.sample_rate)
    for region in project.regions:
        assert region.committed is not None
        expected = apply_take(expected, project.takes[region.committed].to_engine())

    track = project.render_track()
    assert track is not None
    assert track.sample_rate == project.sample_rate
    assert track.audio.tobytes() == expected.audio.tobytes()
    assert track.codes.tobytes() == expected.codes.tobytes()
    assert not track.audio.flags.writeable
    engine_track = track.to_engine()
    assert isinstance(engine_track, Track) and engine_track.audio is track.audio
    assert project.render_track() is track  # cached
    assert not np.array_equal(track.audio, base.audio)

    region = project.regions[0]
    project.execute(SetRegionMuted(region.id, True))
    muted = project.render_track()
    assert muted is not None and muted is not track
    first = project.takes[region.committed or ""]
    a, b = first.sample_start, first.sample_end
    assert np.array_equal(muted.audio[a:b], base.audio[a:b])

    project.execute(SetRegionMuted(region.id, False))
    again = project.render_track()
    assert again is not None and np.array_equal(again.audio, track.audio)

    project.execute(SetBaseTake(None))
    assert project.render_track() is None


def test_render_skips_takes_that_cannot_be_spliced(project: Project) -> None:
    region = project.regions[0]
    committed = project.takes[region.committed or ""]
    assert project.render_track() is not None and project.render_problems == ()
    broken = dataclasses.replace(committed, audio=None, codes=None, unavailable="the file is missing")
    store = dict(project.takes)
    store[committed.id] = broken
    project.takes = type(project.takes)(store)  # as `load` does for a damaged take file
    track = project.render_track()
    assert track is not None
    assert [p.take_id for p in project.render_problems] == [committed.id]
    assert "missing" in project.render_problems[0].message
    base = project.takes[project.base_take or ""]
    assert base.audio is not None
    a, b = committed.sample_start, committed.sample_end
    assert np.array_equal(track.audio[a:b], base.audio[a:b])  # the base shows through


def test_composite_keeps_its_title(project: Project) -> None:
    region = project.regions[0]
    step = Composite((CommitTake(region.id, None), SetGain("generated", -1.0)), "Regenerate selection")
    undo = project.execute(step)
    assert step.description == "Regenerate selection" and undo.description == "Regenerate selection"
    assert SetGain("generated", 0.0).description == "Change gain"


def test_settings_defaults_match_the_sampler() -> None:
    from vaura_core.generation.sampling import SamplingParams

    assert SamplingParams(**GenerationSettings().sampling_kwargs()) == SamplingParams()
    with pytest.raises(CommandError):
        GenerationSettings(variations=0)
    with pytest.raises(CommandError):
        GenerationSettings(top_p=1.5)


def test_takes_refuse_bad_audio() -> None:
    good = base_take(0.1)
    assert good.audio is not None and good.codes is not None
    bad_audio = good.audio.copy()
    bad_audio[3] = np.nan
    with pytest.raises(CommandError, match="NaN"):
        ProjectTake.create(
            audio=bad_audio,
            codes=good.codes,
            model="m",
            seed=0,
            params={},
            stride_segments=1,
            start=0.0,
            end=0.1,
            token_start=0,
            sample_start=0,
        )
    with pytest.raises(CommandError, match="crossfades"):
        ProjectTake.create(
            audio=good.audio[:10],
            codes=good.codes,
            model="m",
            seed=0,
            params={},
            stride_segments=1,
            start=0.0,
            end=0.1,
            token_start=0,
            sample_start=0,
            fade_in=8,
            fade_out=8,
        )


def edit_for(project: Project, pick: int, nested: bool = False) -> Command:
    """A command of kind `pick % 12` aimed at the project's current state (it may still be invalid)."""
    kind, n = pick % 12, pick // 12
    region = project.regions[n % len(project.regions)] if project.regions else None
    target = region.id if region is not None and n % 3 else BASE
    owned = project.takes_of(target)
    chosen = owned[n % len(owned)] if owned else None
    if kind == 0 and region is not None:
        return AddTakes(region.id, (region_take(DURATION, region.start, region.end, seed=n),))
    if kind == 1 and chosen is not None:
        return DeleteTakes(target, (chosen,))
    if kind == 2:
        return CommitTake(target, chosen if n % 4 else None)
    if kind == 3:
        takes = (region_take(DURATION, 2.0, 2.4, seed=n),)
        return NewRegion(Region.new(2.0, 2.4, take_ids=(takes[0].id,)), takes, index=n % 3)
    if kind == 4 and region is not None:
        return DeleteRegion(region.id)
    if kind == 5 and region is not None:
        return SetRegionBounds(region.id, (n % 10) / 10, 1.0 + (n % 10) / 10)
    if kind == 6:
        return SetGain("original" if n % 2 else "generated", -float(n % 90))
    if kind == 7:
        return AddMarker(Marker.new((n % 30) / 10, f"m{n}"), index=0 if n % 2 else None)
    if kind == 8 and project.markers:
        return RemoveMarker(project.markers[n % len(project.markers)].id)
    if kind == 9:
        return SetBaseTake(project.base_take_ids[0] if project.base_take_ids and n % 2 else None)
    if kind == 10 and region is not None:
        return SetRegionMuted(region.id, not region.muted)
    if kind == 11 and not nested:
        return Composite((SetLaneSolo("generated", bool(n % 2)), edit_for(project, n * 12 + n % 11, True)))
    return SetLaneMuted("original", bool(n % 2))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12))
def test_any_sequence_of_edits_undoes_back_to_the_start(clip: Path, picks: list[int]) -> None:
    project = demo_project(clip, duration=DURATION, regions=2, variations=2)
    start = state(project)
    undo_stack: list[Command] = []
    for pick in picks:
        try:
            undo_stack.append(project.execute(edit_for(project, pick)))
        except CommandError:
            continue  # e.g. deleting the last take of a group twice
    for inverse in reversed(undo_stack):
        project.execute(inverse)
    assert state(project) == start


def test_engine_takes_are_adopted_and_given_back_unchanged(project: Project) -> None:
    from vaura_core.engine.engine import Take

    source = project.takes[project.regions[0].take_ids[0]].to_engine()
    assert isinstance(source, Take)
    writable = Take(**{**vars(source), "audio": source.audio.copy(), "codes": source.codes.copy()})
    adopted = ProjectTake.from_engine(writable, label="from the engine")
    writable.audio[:] = 0.0  # the engine's buffers may be reused: the project keeps its own copy
    back = adopted.to_engine()
    for name in ("model", "seed", "params", "stride_segments", "start", "end", "token_start"):
        assert getattr(back, name) == getattr(source, name), name
    assert (back.sample_start, back.fade_in, back.fade_out) == (
        source.sample_start,
        source.fade_in,
        source.fade_out,
    )
    assert back.audio.tobytes() == source.audio.tobytes() and back.codes.tobytes() == source.codes.tobytes()
    assert back.record() == source.record()
