"""Saving and opening projects: round trip, write-once takes, damaged takes, clip relink, migration,
and saves that fail (disk full, read-only folder) without harming the project saved before."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from vaura_core.errors import VauraError
from vaura_core.project import (
    BASE,
    AddTakes,
    ClipRef,
    CommitTake,
    DeleteRegion,
    Project,
    ProjectError,
    SetGain,
    load,
    relink,
    save,
    save_as,
)
from vaura_core.project.clip import quick_hash
from vaura_core.project.model import same_arrays
from vaura_core.project.schema import audio_file, codes_file, to_document
from vaura_core.project.synthetic import base_take, demo_project

DURATION = 3.0


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "media" / "clip.mp4"
    path.parent.mkdir()
    path.write_bytes(os.urandom(200_000))
    return path


@pytest.fixture
def project(clip: Path) -> Project:
    return demo_project(clip, duration=DURATION, regions=2, variations=3)


def document(project: Project, folder: Path) -> dict[str, Any]:
    doc = to_document(project, folder)
    del doc["saved_at"]
    return doc


def assert_same_project(a: Project, b: Project, folder: Path) -> None:
    assert document(a, folder) == document(b, folder)
    assert a.takes.keys() == b.takes.keys()
    for take_id, take in a.takes.items():
        other = b.takes[take_id]
        assert same_arrays(take.audio, other.audio), f"audio of {take_id} differs"
        assert same_arrays(take.codes, other.codes), f"codes of {take_id} differ"


def file_ids(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (folder / "takes").iterdir()}


def test_round_trip_is_identical(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "Chase.vaura")
    assert folder == tmp_path / "Chase.vaura"
    assert project.name == "Chase" and project.folder == folder and not project.dirty
    doc = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    assert doc["format"] == "vaura-project" and doc["version"] == 1

    loaded, report = load(folder)
    assert report.ok and report.clip_status == "ok" and report.problems == ()
    assert_same_project(project, loaded, folder)
    assert loaded.folder == folder and not loaded.dirty and loaded.revision == project.revision
    before, after = project.render_track(), loaded.render_track()
    assert before is not None and after is not None
    assert before.audio.tobytes() == after.audio.tobytes()
    assert before.codes.tobytes() == after.codes.tobytes()

    # Opening by the document's own path works too.
    again, _ = load(folder / "project.json")
    assert_same_project(project, again, folder)


def test_parallel_chains_are_kept_and_older_documents_mean_one(project: Project, tmp_path: Path) -> None:
    from dataclasses import replace

    from vaura_core.project import SetSettings

    project.execute(SetSettings(replace(project.settings, chains=4)))
    folder = save_as(project, tmp_path / "Chains.vaura")
    loaded, _ = load(folder)
    assert loaded.settings.chains == 4
    # A document written before the setting existed opens with sequential generation.
    doc = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    del doc["settings"]["chains"]
    (folder / "project.json").write_text(json.dumps(doc), encoding="utf-8")
    older, report = load(folder)
    assert report.ok and older.settings.chains == 1


def test_a_takes_chains_are_kept_and_older_takes_were_sequential(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "Takes.vaura")
    doc = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    takes = doc["takes"]
    first, second = takes[0], takes[1]
    assert first["chains"] == 1  # written for every take
    first["chains"] = 3
    del second["chains"]  # as saved before parallel chains existed
    (folder / "project.json").write_text(json.dumps(doc), encoding="utf-8")
    loaded, report = load(folder)
    assert report.ok
    assert loaded.takes[first["id"]].chains == 3 and loaded.takes[first["id"]].record()["chains"] == 3
    assert loaded.takes[second["id"]].chains == 1
    assert loaded.takes[first["id"]].to_engine().chains == 3


def test_candidates_are_kept_and_older_documents_mean_one(project: Project, tmp_path: Path) -> None:
    from dataclasses import replace

    from vaura_core.project import SetSettings

    project.execute(SetSettings(replace(project.settings, candidates=5)))
    folder = save_as(project, tmp_path / "Candidates.vaura")
    doc = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    first, second = doc["takes"][0], doc["takes"][1]
    assert doc["settings"]["candidates"] == 5 and first["candidates"] == 1  # written for every take
    first["candidates"] = 4
    del second["candidates"]  # as saved before candidates existed
    del doc["settings"]["candidates"]
    (folder / "project.json").write_text(json.dumps(doc), encoding="utf-8")
    loaded, report = load(folder)
    assert report.ok and loaded.settings.candidates == 1
    assert loaded.takes[first["id"]].candidates == 4 and loaded.takes[first["id"]].record()["candidates"] == 4
    assert loaded.takes[first["id"]].to_engine().candidates == 4
    assert loaded.takes[second["id"]].candidates == 1
    first["candidates"] = 99
    (folder / "project.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProjectError, match=r"takes\[0\]\.candidates: must be within \[1, 8\]"):
        load(folder)


def test_take_files_are_written_once_and_dropped_takes_cleaned_up(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "A.vaura")
    first = file_ids(folder)
    assert len(first) == 2 * len(project.takes)

    new = base_take(DURATION, seed=5)
    project.execute(AddTakes(BASE, (new,)))
    region = project.regions[0]
    undo_delete = project.execute(DeleteRegion(region.id))
    assert project.dirty
    save(project)
    second = file_ids(folder)
    for name, identity in second.items():
        if name in first:
            assert identity == first[name], f"{name} was rewritten"
    assert {audio_file(new.id).split("/")[1], codes_file(new.id).split("/")[1]} <= second.keys()
    for take_id in region.take_ids:
        assert f"{take_id}.wav" not in second and f"{take_id}.codes.npy" not in second

    # Undo after the save: the region's takes come back from memory and are written again.
    project.execute(undo_delete)
    save(project)
    loaded, report = load(folder)
    assert report.ok
    assert_same_project(project, loaded, folder)


def test_damaged_take_files_are_reported_per_take(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "B.vaura")
    first, second = project.regions
    committed = first.committed
    assert committed is not None
    victims = {
        committed: "truncated",
        first.take_ids[0]: "missing",
        second.take_ids[0]: "codes",
        second.take_ids[2]: "checksum",
    }
    for take_id, damage in victims.items():
        wav, npy = folder / audio_file(take_id), folder / codes_file(take_id)
        if damage == "truncated":
            data = wav.read_bytes()
            wav.write_bytes(data[: len(data) // 2])
        elif damage == "missing":
            wav.unlink()
        elif damage == "codes":
            tokens = project.takes[take_id].n_tokens
            np.save(npy, np.zeros((9, tokens + 1), dtype=np.int64), allow_pickle=False)
        else:
            audio, rate = sf.read(wav, dtype="float32")
            audio[100] += 0.25
            sf.write(wav, audio, rate, subtype="FLOAT")

    loaded, report = load(folder)
    assert set(report.unavailable_takes) == set(victims)
    messages = {p.take_id: p.problem for p in report.problems}
    assert "truncated" in messages[committed]
    assert "missing" in messages[first.take_ids[0]]
    wrong_shape = f"(9, {project.takes[second.take_ids[0]].n_tokens + 1})"
    assert wrong_shape in messages[second.take_ids[0]]
    assert "checksum" in messages[second.take_ids[2]]
    for take_id, take in loaded.takes.items():
        assert take.available == (take_id not in victims)
    assert len(report.messages()) == len(victims)

    # The project still plays: the damaged committed take is skipped, the rest is spliced.
    track = loaded.render_track()
    assert track is not None
    assert [p.take_id for p in loaded.render_problems] == [committed]

    # Saving keeps the records of unavailable takes (seed, settings), so nothing more is lost.
    loaded.execute(SetGain("generated", -2.0))
    save(loaded)
    reloaded, report2 = load(folder)
    assert set(reloaded.takes) == set(project.takes)
    assert set(report2.unavailable_takes) == set(victims)
    # Their files (damaged or not) are left for the user to repair, never deleted or overwritten.
    assert (folder / audio_file(second.take_ids[0])).is_file()
    assert (folder / audio_file(committed)).stat().st_size < project.takes[committed].n_samples * 4
    assert reloaded.takes[first.take_ids[0]].seed == project.takes[first.take_ids[0]].seed


def test_pickled_codes_are_never_unpickled(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "C.vaura")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    take_id = project.regions[0].take_ids[0]
    np.save(folder / codes_file(take_id), np.array([Payload()], dtype=object), allow_pickle=True)
    _, report = load(folder)
    assert report.unavailable_takes == (take_id,)
    assert not marker.exists()


def test_clip_moved_with_the_project_is_found(project: Project, clip: Path, tmp_path: Path) -> None:
    save_as(project, tmp_path / "D.vaura")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "D.vaura", moved / "D.vaura")
    shutil.move(clip.parent, moved / "media")
    loaded, report = load(moved / "D.vaura")
    assert report.clip_status == "ok" and report.clip_moved
    assert loaded.clip.path == moved / "media" / "clip.mp4"


def test_missing_and_changed_clip_open_anyway(project: Project, clip: Path, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "E.vaura")
    data = clip.read_bytes()
    clip.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    loaded, report = load(folder)
    assert report.clip_status == "changed" and report.clip_path == clip
    assert len(loaded.takes) == len(project.takes)
    clip.unlink()
    _, report = load(folder)
    assert report.clip_status == "missing" and report.clip_path is None
    assert "not found" in report.messages()[0]


def test_relink(project: Project, clip: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved.mp4"
    shutil.copyfile(clip, moved)
    clip.unlink()
    undo = relink(project, moved)
    assert project.clip.path == moved and project.dirty
    project.execute(undo)
    assert project.clip.path == clip

    other = tmp_path / "other.mp4"
    other.write_bytes(os.urandom(200_000))
    with pytest.raises(ProjectError, match="not the project's clip: its content differs"):
        relink(project, other)
    shorter = tmp_path / "shorter.mp4"
    shorter.write_bytes(os.urandom(1000))
    with pytest.raises(ProjectError, match="1000 bytes"):
        relink(project, shorter)
    assert project.clip.path == clip
    relink(project, other, force=True)
    assert project.clip.path == other and project.clip.quick_hash == quick_hash(other)
    with pytest.raises(ProjectError, match="does not exist"):
        relink(project, tmp_path / "nope.mp4")


def test_relink_checks_the_full_hash_when_recorded(clip: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    project = Project.new(ClipRef.from_file(big, duration=DURATION, frame_rate=25.0, with_full_hash=True))
    # Change a byte the quick hash does not read: only the full hash can tell.
    with open(big, "r+b") as f:
        f.seek(4 * 1024 * 1024 + 100_000)  # between the first two middle blocks
        f.write(b"\xff\x00\xff")
    assert quick_hash(big) == project.clip.quick_hash
    with pytest.raises(ProjectError, match="content differs"):
        relink(project, big)


def test_quick_hash_tells_files_apart(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(10 * 1024 * 1024))
    b = tmp_path / "b.bin"
    shutil.copyfile(a, b)
    assert quick_hash(a) == quick_hash(b)
    with open(b, "r+b") as f:  # a byte inside the last 4 MiB
        f.seek(-10, os.SEEK_END)
        f.write(b"x")
    assert quick_hash(a) != quick_hash(b)
    small = tmp_path / "s.bin"
    small.write_bytes(b"abc")
    small2 = tmp_path / "s2.bin"
    small2.write_bytes(b"abd")
    assert quick_hash(small) != quick_hash(small2)


def _draft_document(project: Project, folder: Path) -> dict[str, Any]:
    """The version-0 layout (see vaura_core.project.migrations) of the same project."""
    v1 = to_document(project, folder)
    s, lanes, clip = v1["settings"], v1["lanes"], v1["clip"]
    return {
        "format": "vaura-project",
        "version": 0,
        "id": v1["id"],
        "name": v1["name"],
        "created": v1["created"],
        "revision": v1["revision"],
        "sample_rate": v1["sample_rate"],
        "clip": {
            "file": clip["path"],
            "size": clip["size_bytes"],
            "hash": clip["quick_hash"],
            "duration": clip["duration"],
            "fps": clip["frame_rate"],
            "start": clip["start_time"],
        },
        "params": {
            "model": s["model"],
            "temperature": s["temperature"],
            "top_k": s["top_k"],
            "top_p": s["top_p"],
            "guidance": s["cfg_scale"],
            "seed": None,
            "variations": s["variations"],
            "stride": s["stride_segments"],
        },
        "gains": {"original": 0.5, "generated": 1.0, "original_muted": lanes["original"]["muted"]},
        "base_takes": v1["base"]["takes"],
        "base_take": v1["base"]["committed"],
        "regions": [
            {k: r[k] for k in ("id", "start", "end", "takes", "colour")} | {"active": r["committed"]}
            for r in v1["regions"]
        ],
        "takes": {
            t["id"]: {
                "label": t["label"],
                "created": t["created"],
                "model": t["model"],
                "seed": t["seed"],
                "params": t["params"],
                "stride": t["stride_segments"],
                "start": t["start"],
                "end": t["end"],
                "token_start": t["token_start"],
                "sample_start": t["sample_start"],
                "fades": [t["fade_in"], t["fade_out"]],
                "samples": t["audio"]["samples"],
                "codebooks": t["codes"]["shape"][0],
                "tokens": t["codes"]["shape"][1],
                "audio_sha256": t["audio"]["sha256"],
                "codes_sha256": t["codes"]["sha256"],
            }
            for t in v1["takes"]
        },
        "markers": [{"t": m["time"], "text": m["label"]} for m in v1["markers"]],
    }


def test_version_0_projects_are_upgraded(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "Old.vaura")
    (folder / "project.json").write_text(json.dumps(_draft_document(project, folder)), encoding="utf-8")
    loaded, report = load(folder)
    assert report.migrated_from == 0 and report.clip_status == "ok" and not report.problems
    assert loaded.lanes["original"].gain_db == pytest.approx(-6.0206, abs=1e-3)
    assert loaded.settings.seed_mode == "random"
    assert [m.id for m in loaded.markers] == ["m0", "m1"]
    assert [m.label for m in loaded.markers] == [m.label for m in project.markers]
    assert [r.committed for r in loaded.regions] == [r.committed for r in project.regions]
    assert loaded.render_track() is not None
    # Saving writes the current version.
    save(loaded)
    assert json.loads((folder / "project.json").read_text(encoding="utf-8"))["version"] == 1
    assert load(folder)[1].migrated_from is None


def test_documents_that_are_not_projects(project: Project, tmp_path: Path) -> None:
    folder = save_as(project, tmp_path / "F.vaura")
    doc = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    takes, regions = doc["takes"], doc["regions"]
    escaping = dict(takes[1], audio=dict(takes[1]["audio"], file="../x"))
    cases = {
        "newer VAURA Studio": dict(doc, version=7),
        "not a VAURA Studio project": dict(doc, format="something-else"),
        "regions\\[0\\].start": dict(doc, regions=[dict(regions[0], start="soon"), *regions[1:]]),
        "takes\\[1\\].audio.file": dict(doc, takes=[takes[0], escaping, *takes[2:]]),
        "belongs to neither": dict(doc, base={"takes": [], "committed": None}),
        "label: is longer": dict(doc, takes=[dict(takes[0], label="x" * 5_000_000), *takes[1:]]),
    }
    for expected, bad in cases.items():
        (folder / "project.json").write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(ProjectError, match=expected) as caught:
            load(folder)
        assert str(folder / "project.json") in str(caught.value)
    with pytest.raises(ProjectError, match="does not exist"):
        load(tmp_path / "nowhere.vaura")


def test_save_needs_a_folder_and_save_as_refuses_foreign_folders(project: Project, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="Save As"):
        save(project)
    foreign = tmp_path / "Documents"
    foreign.mkdir()
    (foreign / "letter.txt").write_text("hello")
    with pytest.raises(ProjectError, match="not empty"):
        save_as(project, foreign)
    assert sorted(os.listdir(foreign)) == ["letter.txt"]
    assert project.name == "Demo"


def _saved_state(folder: Path) -> tuple[bytes, dict[str, tuple[int, int]]]:
    return (folder / "project.json").read_bytes(), file_ids(folder)


@pytest.mark.parametrize("failure", ["replace-enospc", "open-erofs", "audio-enospc"])
def test_failed_save_leaves_the_previous_project_intact(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    folder = save_as(project, tmp_path / "G.vaura")
    before = _saved_state(folder)
    saved_revision = project.saved_revision
    project.execute(AddTakes(BASE, (base_take(DURATION, seed=9),)))
    project.execute(CommitTake(project.regions[0].id, project.regions[0].take_ids[0]))

    if failure == "replace-enospc":
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if str(dst).endswith("project.json"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        expected = "No space left on device"
    elif failure == "open-erofs":
        real_open = os.open

        def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT and str(path).startswith(str(folder)):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        expected = "Read-only file system"
    else:

        def full_write(*args: Any, **kwargs: Any) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(sf, "write", full_write)
        expected = "No space left on device"

    with pytest.raises(ProjectError, match=expected) as caught:
        save(project)
    assert "unchanged" in str(caught.value) and isinstance(caught.value, VauraError)
    monkeypatch.undo()
    assert project.dirty and project.saved_revision == saved_revision
    document_bytes, files = _saved_state(folder)
    assert document_bytes == before[0]
    assert all(files.get(name) == identity for name, identity in before[1].items())
    assert not list(folder.rglob("*partial*")), "a temporary file was left behind"
    loaded, report = load(folder)
    assert report.ok and loaded.revision == saved_revision
    # Once the disk has room again the save goes through.
    save(project)
    assert not project.dirty and load(folder)[0].revision == project.revision


def permissions_enforced(folder: Path) -> bool:
    """False for root (and others with CAP_DAC_OVERRIDE), who write into read-only folders anyway."""
    probe = folder / "probe"
    probe.mkdir()
    os.chmod(probe, 0o555)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        os.chmod(probe, 0o755)
        shutil.rmtree(probe)
    return False


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX permissions")
def test_read_only_folder(project: Project, tmp_path: Path) -> None:
    if not permissions_enforced(tmp_path):
        pytest.skip("running with rights that ignore folder permissions (root); see the simulated cases")
    folder = save_as(project, tmp_path / "H.vaura")
    before = _saved_state(folder)
    project.execute(AddTakes(BASE, (base_take(DURATION, seed=9),)))
    os.chmod(folder / "takes", 0o555)
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(ProjectError, match="Permission denied"):
            save(project)
        with pytest.raises(ProjectError):
            save_as(project, folder / "inside.vaura")
    finally:
        os.chmod(folder, 0o755)
        os.chmod(folder / "takes", 0o755)
    assert _saved_state(folder) == before
    assert load(folder)[1].ok
