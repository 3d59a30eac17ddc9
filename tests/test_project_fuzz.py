"""Hostile and damaged project.json files: opening one either works or raises ProjectError, never
anything else, never hangs and never runs code."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaura_core.project import Project, ProjectError, load, save_as
from vaura_core.project.safejson import MAX_JSON_BYTES
from vaura_core.project.synthetic import demo_project

FUZZ = settings(
    max_examples=120,
    deadline=2000,  # ms per example: a hang or a runaway allocation fails the test
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "..", "../../etc/passwd", "/etc/passwd", "base", "takes/x.wav", "C:\\x", "\0"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], bytes]:
    root = tmp_path_factory.mktemp("fuzz")
    clip = root / "clip.mp4"
    clip.write_bytes(os.urandom(20_000))
    project: Project = demo_project(clip, duration=1.5, regions=2, variations=2)
    folder = save_as(project, root / "Fuzz.vaura")
    data = (folder / "project.json").read_bytes()
    return folder, json.loads(data), data


def open_must_be_safe(folder: Path, data: bytes) -> None:
    (folder / "project.json").write_bytes(data)
    try:
        project, report = load(folder)
    except ProjectError as error:
        message = str(error)
    else:
        # What opened is usable: it renders (or says why not) and every take is accounted for.
        project.render_track()
        assert set(report.unavailable_takes) <= set(project.takes)
        return
    assert str(folder) in message, "the error does not name the file"


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON value (keys and list indices)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths_in(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths_in(item, (*prefix, index)))
    return out


def mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "wrap":
        parent[last] = [parent[last]]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    else:
        parent[last] = value
    return doc


@FUZZ
@given(data=st.data())
def test_mutated_documents(saved: tuple[Path, dict[str, Any], bytes], data: st.DataObject) -> None:
    folder, doc, _ = saved
    mutated = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        locations = paths_in(mutated)
        path = data.draw(st.sampled_from(locations))
        action = data.draw(st.sampled_from(["replace", "delete", "wrap", "duplicate"]))
        mutated = mutate(mutated, path, action, data.draw(json_values))
        if not isinstance(mutated, dict | list):
            break
    open_must_be_safe(folder, json.dumps(mutated, allow_nan=True).encode("utf-8"))


@FUZZ
@given(value=json_values)
def test_random_documents(saved: tuple[Path, dict[str, Any], bytes], value: Any) -> None:
    folder = saved[0]
    open_must_be_safe(folder, json.dumps(value, allow_nan=True).encode("utf-8"))
    # The same values as a project that names itself correctly get further into the checks.
    if isinstance(value, dict):
        labelled = dict(value, format="vaura-project", version=1)
        open_must_be_safe(folder, json.dumps(labelled, allow_nan=True).encode("utf-8"))


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10**9), noise=st.binary(max_size=40))
def test_truncated_and_corrupted_bytes(
    saved: tuple[Path, dict[str, Any], bytes], cut: int, noise: bytes
) -> None:
    folder, _, data = saved
    at = cut % (len(data) + 1)
    open_must_be_safe(folder, data[:at])
    open_must_be_safe(folder, data[:at] + noise + data[at + len(noise) :])


def test_hostile_documents(saved: tuple[Path, dict[str, Any], bytes], tmp_path: Path) -> None:
    folder, doc, data = saved
    head = b'{"format": "vaura-project", "version": 1, "name": '
    hostile = {
        "nesting": b"[" * 200_000 + b"]" * 200_000,
        "nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        "huge integer": head + b"1" * 100_000 + b"}",
        "huge float": head + b"1e999999}",
        "nan": data.replace(b'"revision": ', b'"revision": NaN, "x": '),
        "infinity": head + b"-Infinity}",
        "duplicate key": b'{"format": "vaura-project", "format": "vaura-project", "version": 1}',
        "not utf-8": b'{"format": "\xff\xfe"}',
        "empty": b"",
        "nul bytes": b"\0" * 1000,
        "bom only": b"\xef\xbb\xbf",
    }
    for name, payload in hostile.items():
        (folder / "project.json").write_bytes(payload)
        with pytest.raises(ProjectError):
            load(folder)
        assert name  # keeps the case's name in the traceback

    # A 40 MB string: refused from its size, before anything is parsed.
    big = head + b'"' + b"a" * (MAX_JSON_BYTES + 8 * 1024 * 1024) + b'"}'
    (folder / "project.json").write_bytes(big)
    with pytest.raises(ProjectError, match="too large"):
        load(folder)

    # A take file that is a FIFO would block a reader forever: it is reported, not opened.
    take_id = doc["takes"][1]["id"]
    fifo_folder = tmp_path / "fifo.vaura"
    shutil.copytree(folder, fifo_folder)
    (fifo_folder / "project.json").write_bytes(data)
    if hasattr(os, "mkfifo"):
        wav = fifo_folder / "takes" / f"{take_id}.wav"
        wav.unlink()
        os.mkfifo(wav)
        _, report = load(fifo_folder)
        assert report.unavailable_takes == (take_id,)
        assert "not a regular file" in report.problems[0].problem

    # A take file that links outside the project folder is not followed.
    link_folder = tmp_path / "link.vaura"
    shutil.copytree(folder, link_folder)
    (link_folder / "project.json").write_bytes(data)
    outside = tmp_path / "outside.wav"
    shutil.copyfile(link_folder / "takes" / f"{take_id}.wav", outside)
    (link_folder / "takes" / f"{take_id}.wav").unlink()
    (link_folder / "takes" / f"{take_id}.wav").symlink_to(outside)
    _, report = load(link_folder)
    assert report.unavailable_takes == (take_id,)
    assert "outside the project folder" in report.problems[0].problem
