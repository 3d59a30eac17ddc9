"""Write Foley World clips: MP4 (H.264 yuv420p + AAC mono) beside one JSON of sound events per clip.

AAC's 1024 priming samples are hidden by the MP4 edit list, which FFmpeg honours when decoding, so the
decoded audio keeps sample-exact event timing (checked in tests/test_foley_world.py).
Every file is written to a temporary name in its own folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from vaura_core.errors import VauraError
from vaura_core.foley_world.scene import FOLEY_WORLD_VERSION, Scene, SceneSpec, build_scene

VIDEO_CRF = 18  # visually lossless at these sizes; noise makes lower values grow the files fast
AUDIO_BITRATE = 192_000


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip `index` of a data set: depends on (seed, index) only, not on the clip count."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)  # 63 bits: fits any JSON reader's integers


def scene_json(scene: Scene, video_name: str | None = None) -> str:
    """The clip's JSON text; the same scene always gives the same bytes."""
    data = scene.to_dict()
    if video_name is not None:
        data = {"video": video_name, **data}
    return json.dumps(data, indent=1) + "\n"


@contextlib.contextmanager
def _atomic_paths(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths next to `targets` (same suffix, so formats are inferred), renamed onto them only
    when the block succeeds; removed otherwise."""
    temps = [t.parent / f".{t.stem}.{secrets.token_hex(4)}.partial{t.suffix}" for t in targets]
    try:
        yield temps
        for temp, target in zip(temps, targets, strict=True):
            os.replace(temp, target)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _encode_mp4(scene: Scene, path: Path) -> None:
    import av

    spec = scene.spec
    audio = scene.audio
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=spec.fps)
        video.width = video.height = spec.size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(VIDEO_CRF), "preset": "veryfast"}
        sound = container.add_stream("aac", rate=spec.sample_rate, layout="mono")
        sound.bit_rate = AUDIO_BITRATE

        def put_audio(start: int, end: int) -> None:
            if end <= start:
                return
            frame = av.AudioFrame.from_ndarray(audio[None, start:end], format="flt", layout="mono")
            frame.sample_rate = spec.sample_rate
            frame.pts = start
            for packet in sound.encode(frame):
                container.mux(packet)

        # Interleave: each video frame with the audio of its frame period.
        for k, image in enumerate(scene.frames()):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            for packet in video.encode(frame):
                container.mux(packet)
            put_audio(spec.frame_sample(k), min(spec.frame_sample(k + 1), spec.n_samples))
        put_audio(spec.frame_sample(spec.n_frames), spec.n_samples)
        for packet in video.encode():
            container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)


def write_clip(scene: Scene, mp4_path: str | os.PathLike[str], json_path: str | os.PathLike[str]) -> None:
    """Write the clip's MP4 and its event JSON, each atomically."""
    mp4_path, json_path = Path(mp4_path), Path(json_path)
    for path in (mp4_path, json_path):
        if not path.parent.is_dir():
            raise VauraError(f"{path}: cannot write, the folder {path.parent} does not exist")
        if path.is_dir():
            raise VauraError(f"{path}: cannot write, a folder with that name exists")
    try:
        with _atomic_paths(mp4_path, json_path) as (mp4_temp, json_temp):
            _encode_mp4(scene, mp4_temp)
            json_temp.write_text(scene_json(scene, mp4_path.name), encoding="utf-8")
    except OSError as exc:
        raise VauraError(f"{mp4_path}: cannot write the clip ({exc.strerror or exc})") from exc


def _write_text_atomic(path: Path, text: str) -> None:
    with _atomic_paths(path) as (temp,):
        temp.write_text(text, encoding="utf-8")


def _prepare_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise VauraError(f"{out_dir}: cannot write clips there, it is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise VauraError(f"{out_dir}: cannot write clips there ({exc.strerror or exc})") from exc


def _render_one(out_dir: str, index: int, spec: SceneSpec) -> dict[str, Any]:
    """Build and write clip `index` (runs in worker processes too, so it takes only plain values)."""
    name = f"clip_{index:05d}"
    scene = build_scene(spec)
    folder = Path(out_dir)
    write_clip(scene, folder / f"{name}.mp4", folder / f"{name}.json")
    impacts = sum(e["kind"] == "impact" for e in scene.events)
    return {
        "video": f"{name}.mp4",
        "json": f"{name}.json",
        "seed": spec.seed,
        "impacts": impacts,
        "sustained": len(scene.events) - impacts,
    }


def render_dataset(
    out_dir: str | os.PathLike[str],
    count: int,
    seed: int,
    duration: float = 10.0,
    workers: int = 1,
    *,
    size: int = 128,
    fps: int = 25,
    sample_rate: int = 44100,
    sustained: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `count` clips (clip_00000.mp4 + .json, ...) and index.json into `out_dir`; returns the index
    path. Clip i is `generate_scene(clip_seed(seed, i), ...)`, so it does not depend on `count`."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise VauraError(f"foley world: count must be a whole number >= 1, got {count!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise VauraError(f"foley world: workers must be a whole number >= 1, got {workers!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise VauraError(f"foley world: seed must be a whole number >= 0, got {seed!r}")
    specs = [SceneSpec(clip_seed(seed, i), duration, fps, size, sample_rate, sustained) for i in range(count)]
    specs[0].validate()  # all specs share every setting but the seed
    folder = Path(out_dir)
    _prepare_folder(folder)

    results: list[dict[str, Any] | None] = [None] * count
    if workers == 1:
        for i, spec in enumerate(specs):
            results[i] = _render_one(str(folder), i, spec)
            if progress:
                progress(i + 1, count)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_render_one, str(folder), i, spec): i for i, spec in enumerate(specs)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress:
                    progress(done, count)
    index = {
        "generator": "vaura foley-world",
        "version": FOLEY_WORLD_VERSION,
        "arguments": {
            "count": count,
            "seed": seed,
            "duration": duration,
            "size": size,
            "fps": fps,
            "sample_rate": sample_rate,
            "sustained": sustained,
        },
        "clips": results,
    }
    index_path = folder / "index.json"
    _write_text_atomic(index_path, json.dumps(index, indent=1) + "\n")
    return index_path
