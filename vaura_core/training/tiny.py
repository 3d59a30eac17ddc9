"""`train_tiny`: Foley World data, then the codec, then the visual tower + transformer, in a time budget.

Everything that is expensive to redo is kept in a work folder (rendered clips, the trained codec, the
clip codes, the LM checkpoint), so a crashed or interrupted run resumes where it stopped.
The minutes budget becomes step counts (see `schedule.StepBudget`); the counts a run used are recorded
in the manifest, and passing them back (`codec_steps`, `lm_steps`) reproduces that run for its seed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaura_core.errors import VauraError
from vaura_core.foley_world.scene import FOLEY_WORLD_VERSION
from vaura_core.model.codec import Codec
from vaura_core.model.config import VAuraConfig, preset
from vaura_core.model.vaura import VAura
from vaura_core.training.codec_train import CodecTrainSettings, train_codec
from vaura_core.training.data import (
    ClipData,
    WindowSet,
    build_clips,
    event_class_count,
    event_class_names,
    impact_starts,
    padded_audio,
    render_clip,
)
from vaura_core.training.lm_train import EventHead, LMTrainSettings, train_lm
from vaura_core.training.resume import load_part
from vaura_core.training.schedule import StepBudget
from vaura_core.training.stream import ClipStream, StreamSettings
from vaura_core.training.tower_train import TowerTrainSettings, pretrain_tower

log = logging.getLogger(__name__)

CLIP_SECONDS = 10.24  # 16 whole segments: 13 training windows per clip
CODEC_SHARE = 0.4  # of the time left after the data is ready: the codec is the slower learner
TOWER_SHARE = 0.15  # of the time left after the codec: the visual tower's event pretraining
N_CLIPS = 120  # fixed clips the codec learns from
ONSET_WEIGHT = 5.0  # extra loss weight of impact tokens (docs/training-notes.md, runs 6 and 7)
# Fractions of the transformer steps where the onset weight starts to fall and reaches 0 (run 19).
ONSET_FADE = (0.5, 0.7)
# Weight of the tower's dense motion loss in both its stages (`motion`; training notes, 18th session).
MOTION_WEIGHT = 1.0
PHASED_EVENTS = True  # event labels name the impact's frame in its token (training notes, run 16)
RESERVE_SECONDS = 90.0  # encoding the clips and writing the model


SEEDS_PER_RUN = 10_000
N_PROBE_CLIPS = 4  # held out: the video-reliance probe logged during training


def training_seeds(seed: int, n_clips: int) -> list[int]:
    """Foley World seeds of the training clips: 10000 (seed + 1) + i, disjoint from evaluation seeds.

    The last `N_PROBE_CLIPS` seeds of the block are held out (`probe_seeds`).
    """
    if n_clips > SEEDS_PER_RUN - N_PROBE_CLIPS:
        raise VauraError(f"at most {SEEDS_PER_RUN - N_PROBE_CLIPS} training clips per seed")
    return [SEEDS_PER_RUN * (seed + 1) + i for i in range(n_clips)]


def probe_seeds(seed: int) -> list[int]:
    """Held-out scenes of run `seed`: never trained on, used to log how much the model uses the video."""
    return [SEEDS_PER_RUN * (seed + 2) - 1 - i for i in range(N_PROBE_CLIPS)]


def probe_windows(
    cfg: VAuraConfig, codec: Codec, seed: int, clip_seconds: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames and codes of four windows from each held-out scene, spread over the clip."""
    clips = [render_clip(s, cfg, clip_seconds) for s in probe_seeds(seed)]
    data = WindowSet(cfg, clips, _encode_clips(codec, cfg, clips))
    per_clip = len(data) // len(clips)
    picks = [c * per_clip + round(j * (per_clip - 1) / 3) for c in range(len(clips)) for j in range(4)]
    return data.batch(picks)


@dataclass
class TinyTrainingReport:
    out_dir: Path
    seed: int
    seconds: float
    data_seconds: float
    codec_steps: int
    codec_seconds: float
    lm_steps: int
    lm_seconds: float
    codec_history: list[dict[str, float]] = field(default_factory=list)
    lm_history: list[dict[str, float]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    tower_steps: int = 0
    tower_seconds: float = 0.0
    tower_history: list[dict[str, float]] = field(default_factory=list)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(path)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _encode_clips(codec: Codec, cfg: VAuraConfig, clips: Sequence[ClipData]) -> list[torch.Tensor]:
    out = []
    for clip in clips:
        wave = torch.from_numpy(padded_audio(cfg, clip))
        out.append(codec.encode(wave, cfg.codec.sample_rate)[0].to(torch.int16))
    return out


def stream_workers(workers: int) -> tuple[StreamSettings, StreamSettings]:
    """Clip streams of the transformer stage and of the tower's pretraining, for `workers` processes.

    Rendering, not training, is the slow part of both: on the 2-core CPU (`--workers 2`) one core
    trains beside one renderer, and the tower's stream, which encodes no audio, takes both; with a GPU
    every spare core renders. The count changes the wall time, never the batches.
    """
    return StreamSettings(workers=max(1, workers - 1)), StreamSettings(workers=max(1, workers))


def machine_description(device: torch.device) -> str:
    """What trained: architecture, threads, CPU model and the vector unit torch uses, and the GPU.

    Two VMs of the "same" 2-core kind differed 2-3x in training speed (AVX vs AVX-512), so a card's
    wall time means little without the CPU it was measured on.
    """
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.machine()} {torch.get_num_threads()} threads"
    text += f", {cpu or 'unknown CPU'} ({torch.backends.cpu.get_cpu_capability()})"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


@contextmanager
def _threads_beside(threads: int, stream: StreamSettings) -> Iterator[None]:
    """Leave one core per rendering worker: the trainer's torch threads, restored afterwards."""
    torch.set_num_threads(max(1, threads - stream.workers))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_tiny(
    out_dir: Path,
    seed: int = 0,
    minutes_budget: float = 85.0,
    *,
    work_dir: Path | None = None,
    n_clips: int = N_CLIPS,
    codec_steps: int | None = None,
    lm_steps: int | None = None,
    tower_steps: int | None = None,
    device: str | torch.device = "cpu",
    workers: int = 2,
    config: VAuraConfig | None = None,
    codec_settings: CodecTrainSettings | None = None,
    lm_settings: LMTrainSettings | None = None,
    clip_seconds: float = CLIP_SECONDS,
    stream_settings: StreamSettings | None = None,
    tower_settings: TowerTrainSettings | None = None,
    phased_events: bool = PHASED_EVENTS,
) -> TinyTrainingReport:
    """Train vaura-tiny from scratch and write it to `out_dir` (model.safetensors, config, manifest).

    `minutes_budget` bounds the whole run (data, codec, LM), stages reused from the work folder
    included (their recorded time is taken off the budget); fixed `codec_steps` / `tower_steps` /
    `lm_steps` override the budget for their stage. The codec learns from `n_clips` fixed clips. The
    visual tower is then pretrained on the impact events of fresh clips (`tower_train`), and the
    transformer trained with it on another stream of fresh clips (`stream.ClipStream`), their event
    labels feeding the auxiliary loss (`lm_settings.aux_weight`, 0 switches it off); with
    `phased_events` those labels also name the impact's frame inside its visual token.
    """
    t_start = time.perf_counter()
    budget_s = float(minutes_budget) * 60.0
    if budget_s <= 0:
        raise VauraError("the training budget must be a positive number of minutes")
    cfg = config or preset("tiny")
    cues, label_classes = cfg.lm.impact_cues, event_class_count(cfg.visual.tubelet, phased_events)
    if cues and cues != label_classes:
        raise VauraError(
            f"the model's impact cues have {cues} classes but the {'phased' if phased_events else 'plain'} "
            f"event labels {label_classes}: cues need phased labels"
        )
    out_dir = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out_dir.with_name(out_dir.name + "-work")
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VauraError(f"cannot create the work folder {work}: {exc.strerror or exc}") from None
    device = torch.device(device)
    if device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace, chosen before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    codec_settings = codec_settings or CodecTrainSettings()
    lm_settings = lm_settings or LMTrainSettings(
        onset_weight=ONSET_WEIGHT,
        onset_fade_start=ONSET_FADE[0],
        onset_fade_end=ONSET_FADE[1],
        motion_weight=MOTION_WEIGHT,
    )
    lm_stream, tower_stream = stream_workers(workers)
    stream_settings = stream_settings or lm_stream
    tower_settings = tower_settings or TowerTrainSettings(motion_weight=MOTION_WEIGHT)
    reused_seconds = 0.0  # of stages done by an earlier, interrupted run

    def left() -> float:
        return budget_s - reused_seconds - (time.perf_counter() - t_start)

    # 1. Data.
    seeds = training_seeds(seed, n_clips)
    log.info("rendering %d Foley World clips into %s", n_clips, work / "data")
    clips = build_clips(
        seeds,
        cfg,
        clip_seconds,
        work / "data",
        workers=workers,
        progress=lambda i, n: log.info("clip %d/%d", i, n) if i % 10 == 0 or i == n else None,
    )
    data_seconds = time.perf_counter() - t_start

    # 2. Codec.
    codec_file = work / "codec.safetensors"
    codec_history: list[dict[str, float]] = []
    if codec_file.exists():
        codec_state = _load_tensors(codec_file)
        meta = (
            json.loads((work / "codec-meta.json").read_text()) if (work / "codec-meta.json").exists() else {}
        )
        n_codec, codec_seconds = int(meta.get("steps", 0)), float(meta.get("seconds", 0.0))
        codec_history = list(meta.get("history", []))
        reused_seconds += codec_seconds
        log.info("reusing the codec in %s (%.0f s of the budget)", codec_file, codec_seconds)
    else:
        seconds = max(60.0, (left() - RESERVE_SECONDS) * CODEC_SHARE)
        res = train_codec(
            [c.audio for c in clips],
            cfg.codec,
            StepBudget(seconds=seconds, steps=codec_steps, min_steps=20),
            seed=seed,
            settings=codec_settings,
            device=device,
            impacts=[impact_starts(c, cfg.fps) for c in clips],
        )
        codec_state, n_codec, codec_seconds, codec_history = (
            res.state_dict,
            res.steps,
            res.seconds,
            res.history,
        )
        _save_tensors(codec_file, codec_state)
        meta = {"steps": n_codec, "seconds": codec_seconds, "history": codec_history}
        (work / "codec-meta.json").write_text(json.dumps(meta))

    torch.manual_seed(seed)
    model = VAura(cfg)
    model.audio_encoder.model.load_state_dict(codec_state)
    model.to(device)
    threads = torch.get_num_threads()
    stream_seeds = training_seeds(seed, SEEDS_PER_RUN - N_PROBE_CLIPS)[n_clips:]

    # 3. The visual tower learns the impact events of fresh clips (frames and labels only). Its
    # clips come from the end of the seed block, the transformer's from the start: never the same.
    tower_file, tower_meta = work / "tower.pt", work / "tower-meta.json"
    if tower_file.exists() and tower_meta.exists():
        state = torch.load(tower_file, map_location="cpu", weights_only=True)
        load_part(model.visual_feature_extractor, state["tower"], tower_file, "pretrain the tower again")
        head = EventHead(cfg.visual.dim, EventHead.classes_in(state["head"]))
        head.load_state_dict(state["head"])
        if head.n_classes != label_classes:
            raise VauraError(
                f"{tower_file}: its event head was trained on {'plain' if phased_events else 'phased'} "
                f"labels; delete it (and tower-meta.json) to pretrain the tower again"
            )
        motion_state = state.get("motion")
        meta = json.loads(tower_meta.read_text())
        n_tower, tower_seconds, tower_history = int(meta["steps"]), float(meta["seconds"]), meta["history"]
        reused_seconds += tower_seconds
        log.info("reusing the pretrained visual tower in %s", tower_file)
    else:
        seconds = max(30.0, (left() - RESERVE_SECONDS) * TOWER_SHARE)
        with (
            _threads_beside(threads, tower_stream),
            ClipStream(
                cfg, None, stream_seeds[::-1], clip_seconds, tower_stream, phased=phased_events
            ) as stream,
        ):
            res_tower = pretrain_tower(
                model,
                stream,
                StepBudget(seconds=seconds, steps=tower_steps, min_steps=20),
                seed=seed,
                settings=tower_settings,
            )
        head, n_tower, tower_seconds = res_tower.head, res_tower.steps, res_tower.seconds
        tower_history, motion_state = res_tower.history, res_tower.motion
        state = {"tower": model.visual_feature_extractor.state_dict(), "head": head.state_dict()}
        if motion_state is not None:
            state["motion"] = motion_state
        torch.save(state, tower_file)
        meta = {"steps": n_tower, "seconds": tower_seconds, "history": tower_history}
        tower_meta.write_text(json.dumps(meta))

    # 4. Visual tower + transformer, on fresh clips rendered and encoded while they train.
    probe = probe_windows(cfg, Codec.from_state_dict(cfg.codec, codec_state), seed, clip_seconds)
    lm_seconds_budget = max(60.0, left() - RESERVE_SECONDS / 3)
    with (
        _threads_beside(threads, stream_settings),
        ClipStream(
            cfg, codec_state, stream_seeds, clip_seconds, stream_settings, phased=phased_events
        ) as stream,
    ):
        res_lm = train_lm(
            model,
            stream,
            StepBudget(seconds=lm_seconds_budget, steps=lm_steps, min_steps=20),
            seed=seed,
            settings=lm_settings,
            checkpoint=work / "lm.pt",
            probe=probe,
            aux_head=head if lm_settings.aux_weight > 0 else None,
            motion_head=motion_state,
        )
        stream_clips = stream.clips_used(res_lm.steps)

    # 5. Write the model folder.
    report = TinyTrainingReport(
        out_dir=out_dir,
        seed=seed,
        seconds=time.perf_counter() - t_start + reused_seconds,
        data_seconds=data_seconds,
        codec_steps=n_codec,
        codec_seconds=codec_seconds,
        lm_steps=res_lm.steps,
        lm_seconds=res_lm.seconds,
        codec_history=codec_history,
        lm_history=res_lm.history,
        tower_steps=n_tower,
        tower_seconds=tower_seconds,
        tower_history=tower_history,
        settings={
            "n_clips": n_clips,
            "clip_seconds": clip_seconds,
            "training_seeds": [seeds[0], seeds[-1]],
            "stream": asdict(stream_settings),
            "tower_stream": asdict(tower_stream),
            "tower": asdict(tower_settings),
            "stream_clips": stream_clips,
            "stream_seeds": [stream_seeds[0], stream_seeds[stream_clips - 1]],
            "probe_seeds": probe_seeds(seed),
            "minutes_budget": minutes_budget,
            "device": str(device),
            "torch": torch.__version__,
            "machine": machine_description(device),
            "codec": asdict(codec_settings),
            "lm": asdict(lm_settings),
            # Also inside "lm"; on its own so the card and readers need not know the settings' layout.
            "aux_weight": lm_settings.aux_weight,
            "motion_weight": lm_settings.motion_weight,
            "event_classes": event_class_names(cfg.visual.tubelet, phased_events),
            "phased_events": phased_events,
            "foley_world": FOLEY_WORLD_VERSION,  # the scenes it learned from (`foley_world.scene`)
        },
    )
    save_trained(out_dir, model, report)
    return report


def save_trained(out_dir: Path, model: VAura, report: TinyTrainingReport) -> Path:
    """Write the model folder (store format) with the training record and its model card."""
    from vaura_core.training.card import write_model_card
    from vaura_core.weights.store import save_model_dir

    state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    meta = {
        "name": model.cfg.name,
        "description": "small V-AURA trained from scratch on Foley World by `vaura train-tiny`",
        "training": training_record(report),
        "sources": [],
    }
    save_model_dir(out_dir, model.cfg, state, meta, overwrite=True)
    write_model_card(out_dir)
    return out_dir


def training_record(report: TinyTrainingReport) -> dict[str, Any]:
    """The JSON training summary kept in the manifest (and rendered into the model card)."""

    def summary(history: list[dict[str, float]], keys: Sequence[str]) -> list[dict[str, float]]:
        # At most ~12 evenly spaced rows, always the first and the last.
        if not history:
            return []
        idx = sorted({round(i * (len(history) - 1) / 11) for i in range(12)})
        # NaN (no impact token in a logging interval, or a column a resumed run did not have yet)
        # is left out: JSON has no NaN.
        rows = [history[i] for i in idx]
        keep = ("step", *keys)
        return [{k: round(r[k], 5) for k in keep if math.isfinite(r.get(k, math.nan))} for r in rows]

    return {
        "seed": report.seed,
        "seconds": round(report.seconds, 1),
        "data_seconds": round(report.data_seconds, 1),
        "codec_steps": report.codec_steps,
        "codec_seconds": round(report.codec_seconds, 1),
        "lm_steps": report.lm_steps,
        "lm_seconds": round(report.lm_seconds, 1),
        "tower_steps": report.tower_steps,
        "tower_seconds": round(report.tower_seconds, 1),
        "settings": report.settings,
        "codec_curve": summary(report.codec_history, ("total", "mel", "wave", "commit")),
        "tower_curve": summary(report.tower_history, ("aux", "aux_acc", "motion")),
        "lm_curve": summary(
            report.lm_history,
            ("loss", "q0", "q1", "q8", "aux", "aux_acc", "motion", "probe_own", "probe_other"),
        ),
    }
