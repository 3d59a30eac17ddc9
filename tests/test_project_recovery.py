"""Autosave and crash recovery, with a real process killed by SIGKILL during and after generation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vaura_core.project import (
    AddTakes,
    Autosaver,
    CommitTake,
    Project,
    ProjectError,
    discard_recovery,
    find_recoverable,
    load,
    recover,
    recovery_root,
    save_as,
)
from vaura_core.project.autosave import OWNER_FILE, owner_alive, pid_alive
from vaura_core.project.synthetic import demo_project, region_take

REPO = Path(__file__).resolve().parent.parent
DURATION = 3.0

# The child "generates" like the app: a region of three takes at a time, each followed by an autosave
# (and a commit with its own autosave), printing a marker only once the autosave has returned.
CHILD = r"""
import sys, time
from pathlib import Path
from vaura_core.project import Autosaver, CommitTake, NewRegion, Region
from vaura_core.project.synthetic import demo_project, region_take

root, clip, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
project = demo_project(clip, duration=6.0, regions=1, variations=2)
saver = Autosaver(project, root=root)
saver.autosave_now()
first = [f"{t.id}:{t.audio_sha256}" for t in project.takes.values()]
print("READY", saver.folder.name, *first, flush=True)
for step in range(steps):
    start = 0.2 * step % 5.0
    takes = tuple(region_take(6.0, start, start + 0.8, seed=1000 + 3 * step + v) for v in range(3))
    region = Region.new(start, start + 0.8, take_ids=tuple(t.id for t in takes))
    project.execute(NewRegion(region, takes))
    saver.autosave_now()
    print("AUTOSAVED", *(f"{t.id}:{t.audio_sha256}" for t in takes), flush=True)
    project.execute(CommitTake(region.id, takes[step % 3].id))
    saver.autosave_now()
    print("COMMITTED", region.id, takes[step % 3].id, flush=True)
print("DONE", flush=True)
time.sleep(120)
"""


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(30_000))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "recovery"


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def orphan(saver: Autosaver) -> None:
    """Make a recovery copy look as if its session had crashed."""
    owner_file = saver.folder / OWNER_FILE
    owner = json.loads(owner_file.read_text(encoding="utf-8"))
    owner["pid"] = dead_pid()
    owner_file.write_text(json.dumps(owner), encoding="utf-8")


def run_child_and_kill(
    root: Path, clip: Path, steps: int, kill_after: str, count: int, delay: float = 0.0
) -> list[str]:
    """Start the child, SIGKILL it `delay` s after `count` lines starting with `kill_after`; return all
    the lines it printed."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(clip), str(steps)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines: list[str] = []
    seen = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith(kill_after):
                seen += 1
                if seen == count:
                    break
        # While it runs, its copy belongs to a live session and is not offered.
        assert find_recoverable(root) == []
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        # Markers printed before the kill were written after their autosave returned: they count too.
        lines.extend(line.strip() for line in child.stdout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return lines


def autosaved_takes(lines: list[str]) -> dict[str, str]:
    takes = {}
    for line in lines:
        if line.startswith(("READY", "AUTOSAVED")):
            for item in line.split()[1:]:
                if ":" in item:
                    take_id, checksum = item.split(":")
                    takes[take_id] = checksum
    return takes


# name: (kill after the n-th line starting with..., n, then wait seconds, regions the child generates)
SCENARIOS = {
    # Not synchronised with the child: the kill lands wherever it is, often inside an autosave.
    "during-generation": ("AUTOSAVED", 2, 0.25, 40),
    "after-generation": ("DONE", 1, 0.0, 4),
}


@pytest.fixture(scope="module")
def killed_sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[str]]]:
    """Every scenario's child, run side by side (their start-up dominates), killed: (root, lines)."""
    base = tmp_path_factory.mktemp("killed")
    clip = base / "clip.mp4"
    clip.write_bytes(os.urandom(30_000))
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        futures = {
            name: pool.submit(run_child_and_kill, base / name, clip, steps, kill_after, count, delay)
            for name, (kill_after, count, delay, steps) in SCENARIOS.items()
        }
        return {name: (base / name, future.result()) for name, future in futures.items()}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_9_then_recover_every_autosaved_take(
    killed_sessions: dict[str, tuple[Path, list[str]]], scenario: str
) -> None:
    root, lines = killed_sessions[scenario]
    kill_after, count, _, _ = SCENARIOS[scenario]
    expected = autosaved_takes(lines)
    commits = [line.split()[1:] for line in lines if line.startswith("COMMITTED")]
    assert len(expected) >= 3 + 3 * count
    assert ("DONE" in lines) == (kill_after == "DONE"), "the child was not killed when intended"

    found = find_recoverable(root)
    assert len(found) == 1
    info = found[0]
    assert lines[0].split()[1] == info.folder.name
    assert info.saved_folder is None and info.takes >= len(expected)

    project, report = recover(info)
    assert report.problems == ()
    assert project.dirty and project.folder is None
    for take_id, checksum in expected.items():
        take = project.takes[take_id]
        assert take.available and take.audio_sha256 == checksum
    for region_id, take_id in commits:
        assert project.region(region_id).committed == take_id
    track = project.render_track()
    assert track is not None and len(track.audio) == round(6.0 * project.sample_rate)

    discard_recovery(info)
    assert not info.folder.exists() and find_recoverable(root) == []


def test_autosave_writes_takes_once_and_json_last(root: Path, clip: Path) -> None:
    project = demo_project(clip, duration=DURATION)
    saver = Autosaver(project, root=root)
    assert saver.autosave_now()
    takes_dir = saver.folder / "takes"
    first = {p.name: p.stat().st_ino for p in takes_dir.iterdir()}
    assert not saver.autosave_now()  # nothing changed: heartbeat only

    region = project.regions[0]
    extra = region_take(DURATION, region.start, region.end, seed=77)
    project.execute(AddTakes(region.id, (extra,)))
    assert saver.autosave_now()
    second = {p.name: p.stat().st_ino for p in takes_dir.iterdir()}
    assert {n: second[n] for n in first} == first  # existing take files untouched
    assert set(second) - set(first) == {f"{extra.id}.wav", f"{extra.id}.codes.npy"}
    copy, report = load(saver.folder)
    assert report.problems == () and extra.id in copy.takes

    owner = json.loads((saver.folder / OWNER_FILE).read_text(encoding="utf-8"))
    assert owner["pid"] == os.getpid() and owner["project_id"] == project.id
    assert owner_alive(owner)
    assert find_recoverable(root) == []  # our own session is alive

    saver.close()
    assert not saver.folder.exists()


def test_recovery_is_offered_only_when_newer_than_the_saved_project(
    root: Path, clip: Path, tmp_path: Path
) -> None:
    project = demo_project(clip, duration=DURATION)
    saved = save_as(project, tmp_path / "Saved.vaura")
    saver = Autosaver(project, root=root)
    saver.autosave_now()
    orphan(saver)
    assert find_recoverable(root) == []  # the saved project already has all of it

    region = project.regions[0]
    project.execute(CommitTake(region.id, region.take_ids[0]))
    saver.autosave_now()
    orphan(saver)
    [info] = find_recoverable(root)
    assert info.saved_folder == saved and info.saved_revision == project.saved_revision
    assert info.revision == project.revision

    recovered, report = recover(info)
    assert report.ok
    assert recovered.folder == saved and recovered.dirty
    assert recovered.region(region.id).committed == region.take_ids[0]
    assert load(saved)[0].region(region.id).committed == region.take_ids[1]  # the saved file is untouched


def test_a_clean_exit_leaves_nothing_to_recover(root: Path, clip: Path) -> None:
    saver = Autosaver(demo_project(clip, duration=DURATION), root=root)
    saver.autosave_now()
    saver.close()
    assert find_recoverable(root) == []


def test_damaged_recovery_copies_are_skipped(root: Path, clip: Path) -> None:
    saver = Autosaver(demo_project(clip, duration=DURATION), root=root)
    saver.autosave_now()
    orphan(saver)
    (saver.folder / "project.json").write_bytes(b'{"format": "vaura-project", "vers')
    (root / "stray-folder").mkdir()
    (root / "stray-file").write_text("x")
    assert find_recoverable(root) == []


def test_discarding_a_live_sessions_copy_is_refused(root: Path, clip: Path) -> None:
    project = demo_project(clip, duration=DURATION)
    saver = Autosaver(project, root=root)
    saver.autosave_now()
    orphan(saver)
    [info] = find_recoverable(root)
    owner_file = saver.folder / OWNER_FILE
    owner = json.loads(owner_file.read_text(encoding="utf-8"))
    owner["pid"] = os.getpid()
    owner_file.write_text(json.dumps(owner), encoding="utf-8")
    with pytest.raises(ProjectError, match="running session"):
        discard_recovery(info)
    assert saver.folder.exists()


def test_owner_liveness() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(0)
    here = {"pid": os.getpid(), "host": socket.gethostname()}
    assert owner_alive(here)
    assert not owner_alive({**here, "process_start": "-1"} if sys.platform == "linux" else {"pid": 0})
    now = time.time()
    remote = {"pid": 1, "host": socket.gethostname() + "-elsewhere", "heartbeat": now - 60}
    assert owner_alive(remote, now=now)
    assert not owner_alive({**remote, "heartbeat": now - 3600}, now=now)
    assert not owner_alive({"pid": "1", "host": 3})


@pytest.mark.skipif(sys.platform != "linux", reason="zombies as /proc shows them")
def test_a_killed_unreaped_process_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child.pid)  # a zombie until waited for
    finally:
        child.wait()


def test_recovery_root_follows_vaura_home(tmp_path: Path) -> None:
    assert recovery_root({"VAURA_HOME": str(tmp_path)}) == tmp_path / ".recovery"
    assert recovery_root({"HOME": str(tmp_path)}).name == "recovery"


def test_autosave_into_an_unwritable_place_is_a_clear_error(clip: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    saver = Autosaver(Project.new(demo_project(clip, duration=DURATION).clip), root=blocker)
    with pytest.raises(ProjectError, match="recovery copy"):
        saver.autosave_now()
