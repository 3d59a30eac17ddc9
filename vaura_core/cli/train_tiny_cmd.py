"""`vaura train-tiny --out DIR --seed S [--minutes M] [--aux-weight W]`: train vaura-tiny from scratch.

Writes a model folder (model.safetensors, config.json, manifest.json, MODEL_CARD.md) at DIR; the
rendered clips, the codec and checkpoints stay in DIR-work so an interrupted run resumes.
Exit codes: 0 ok, 2 bad input, 130 cancelled.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vaura_core.model.config import VAuraConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-tiny", help="train the small embedded model on Foley World", description=__doc__
    )
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    p.add_argument("--minutes", type=float, default=85.0, help="wall-clock budget in minutes (default 85)")
    p.add_argument("--clips", type=int, default=120, help="Foley World training clips (default 120)")
    p.add_argument("--codec-steps", type=int, default=None, help="fixed codec steps (overrides the budget)")
    p.add_argument(
        "--tower-steps",
        type=int,
        default=None,
        help="fixed visual-tower pretraining steps (overrides the budget)",
    )
    p.add_argument(
        "--lm-steps", type=int, default=None, help="fixed transformer steps (overrides the budget)"
    )
    p.add_argument(
        "--aux-weight",
        type=float,
        default=1.0,
        help="weight of the visual tower's auxiliary impact-event loss (default 1; 0 switches it off)",
    )
    p.add_argument(
        "--motion-weight",
        type=float,
        default=None,
        help="weight of the visual tower's dense motion loss: where each object is and how it moves, per "
        "patch (default 1; 0 switches it off, as the runs before the eighteenth session)",
    )
    p.add_argument(
        "--onset-weight",
        type=float,
        default=None,
        help="extra transformer loss weight of the audio tokens at impacts (default 5, the shipped "
        "weights' recipe; 0: a plain mean)",
    )
    p.add_argument(
        "--onset-fade",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        default=None,
        help="the onset weight holds until fraction START of the transformer steps, then falls "
        "linearly to 0 at END (default 0.5 0.7, the shipped weights' recipe; 1 1: constant to the "
        "end, as vaura-tiny runs 6-18)",
    )
    p.add_argument(
        "--codec-impact-share",
        type=float,
        default=None,
        help="share of the codec's training excerpts placed on impacts, materials drawn evenly "
        "(default 0.5; 0: every excerpt at a random offset, as vaura-tiny runs 1-11 trained)",
    )
    p.add_argument(
        "--video-lookahead",
        type=int,
        default=None,
        help="position alignment: position p sees visual token p // 7 + N (0 is the original; "
        "vaura-tiny runs 5-13 trained with 1)",
    )
    p.add_argument(
        "--video-lead-steps",
        type=int,
        default=None,
        help="time alignment: position p sees the visual token at the time of audio step p + N "
        "(default: the tiny preset's 2)",
    )
    p.add_argument(
        "--video-phase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with time alignment, each position is also told how many audio steps into its visual "
        "token it is (default: the tiny preset's choice)",
    )
    p.add_argument(
        "--impact-cues",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with time alignment and phased events, the transformer reads the model's own event head: "
        "each step where a frame starts is marked with that frame's impact probabilities (default: the "
        "tiny preset's choice)",
    )
    p.add_argument(
        "--cue-span",
        type=int,
        default=None,
        metavar="STEPS",
        help="with impact cues, mark a frame's first audio step and the STEPS - 1 steps before it, each "
        "with its own vectors: a countdown to the hit (1: the first step only; default: the tiny "
        "preset's choice)",
    )
    p.add_argument(
        "--phased-events",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the visual tower's event labels also name the frame of its token an impact starts on "
        "(default: on, as the shipped weights; --no-phased-events: material only, as runs 1-14)",
    )
    p.add_argument(
        "--img-size",
        type=int,
        default=None,
        help="visual tower input size in pixels, a multiple of 16 (default: the tiny preset's 64)",
    )
    p.add_argument(
        "--tubelet",
        type=int,
        default=None,
        help="frames per visual token, 1, 2, 4 or 8 (default: the tiny preset's 2, as the release)",
    )
    p.add_argument("--work", default=None, help="work folder (default: DIR-work)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes rendering clips (default 2 on the CPU; with CUDA, every core but one)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: fastest on a busy 2-core CPU)"
    )
    p.set_defaults(func=run)


def default_workers(device: str) -> int:
    """Rendering processes: on a GPU the data, not the model, is the slow part, so use the cores."""
    if device.startswith("cuda"):
        return max(2, (os.cpu_count() or 2) - 1)
    return 2


def _config(
    video_lookahead: int | None,
    img_size: int | None = None,
    video_lead_steps: int | None = None,
    video_phase: bool | None = None,
    tubelet: int | None = None,
    impact_cues: bool | None = None,
    cue_span: int | None = None,
) -> VAuraConfig:
    """The tiny preset, with another video alignment, tower input size, token length or impact cues
    when asked."""
    import dataclasses

    from vaura_core.model.config import preset
    from vaura_core.training.data import event_class_count

    cfg = preset("tiny")
    if video_lookahead is not None:
        lm = dataclasses.replace(
            cfg.lm, video_lookahead=video_lookahead, video_lead_steps=None, video_phase=False, impact_cues=0
        )
        cfg = dataclasses.replace(cfg, lm=lm)
    elif video_lead_steps is not None:
        lm = dataclasses.replace(cfg.lm, video_lookahead=0, video_lead_steps=video_lead_steps)
        cfg = dataclasses.replace(cfg, lm=lm)
    if video_phase is not None:
        cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, video_phase=video_phase))
    if img_size is not None:
        cfg = dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, img_size=img_size))
    if tubelet is not None:  # finer tokens: more of them per window for the transformer
        visual = dataclasses.replace(cfg.visual, tubelet=tubelet)
        lm = dataclasses.replace(cfg.lm, video_tokens=cfg.window_segments * visual.tokens_per_segment)
        cfg = dataclasses.replace(cfg, visual=visual, lm=lm)
    if impact_cues is None:
        impact_cues = bool(cfg.lm.impact_cues)
    # one class per material and frame of the (possibly new) token length, and "none"
    count = event_class_count(cfg.visual.tubelet, phased=True) if impact_cues else 0
    span = (cfg.lm.impact_cue_span if cue_span is None else cue_span) if count else 1
    return dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, impact_cues=count, impact_cue_span=span))


def run(args: argparse.Namespace) -> int:
    from vaura_core.cli import EXIT_BAD_INPUT, EXIT_CANCELLED
    from vaura_core.errors import Cancelled, VauraError

    def fail(message: str) -> int:
        print(f"vaura train-tiny: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if args.minutes <= 0:
        return fail("--minutes must be positive")
    if args.seed < 0:
        return fail("--seed must be >= 0")
    if args.clips < 1:
        return fail("--clips must be at least 1")
    for name in ("codec_steps", "tower_steps", "lm_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return fail(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers is None:
        args.workers = default_workers(args.device)
    if args.workers < 1 or args.threads < 1:
        return fail("--workers and --threads must be at least 1")
    for flag in ("aux_weight", "onset_weight", "motion_weight"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value < float("inf"):
            return fail(f"--{flag.replace('_', '-')} must be a finite number >= 0")
    if args.onset_fade is not None and not 0 <= args.onset_fade[0] <= args.onset_fade[1] <= 1:
        return fail("--onset-fade needs 0 <= START <= END <= 1 (fractions of the transformer steps)")
    if args.codec_impact_share is not None and not 0 <= args.codec_impact_share <= 1:
        return fail("--codec-impact-share must be between 0 and 1")
    if args.video_lookahead is not None and not 0 <= args.video_lookahead <= 8:
        return fail("--video-lookahead must be between 0 and 8 visual tokens")
    if args.video_lead_steps is not None and not 0 <= args.video_lead_steps <= 64:
        return fail("--video-lead-steps must be between 0 and 64 audio steps")
    if args.video_lookahead is not None and args.video_lead_steps is not None:
        return fail("--video-lookahead and --video-lead-steps pick different alignments: give one")
    if args.video_lookahead is not None and args.video_phase:
        return fail("--video-phase needs time alignment (--video-lead-steps), not --video-lookahead")
    if args.impact_cues and args.video_lookahead is not None:
        return fail("--impact-cues needs time alignment (--video-lead-steps), not --video-lookahead")
    if args.impact_cues and args.phased_events is False:
        return fail("--impact-cues needs the phased event labels: drop --no-phased-events")
    if args.cue_span is not None and not 1 <= args.cue_span <= 32:
        return fail("--cue-span must be between 1 and 32 audio steps")
    if args.cue_span not in (None, 1) and args.impact_cues is False:
        return fail("--cue-span needs impact cues: drop --no-impact-cues")
    if args.img_size is not None and not (16 <= args.img_size <= 224 and args.img_size % 16 == 0):
        return fail("--img-size must be a multiple of 16 between 16 and 224")
    if args.tubelet is not None and args.tubelet not in (1, 2, 4, 8):
        return fail("--tubelet must be 1, 2, 4 or 8 frames")
    if args.tubelet not in (None, 2) and args.video_lookahead is not None:
        # position alignment repeats a token over 7 positions: right for 2-frame tokens only
        return fail("--tubelet needs time alignment (--video-lead-steps), not --video-lookahead")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return fail(f"{out}: exists and is not a folder")

    import torch

    from vaura_core.training.codec_train import CodecTrainSettings
    from vaura_core.training.lm_train import LMTrainSettings
    from vaura_core.training.tiny import (
        MOTION_WEIGHT,
        N_PROBE_CLIPS,
        ONSET_FADE,
        ONSET_WEIGHT,
        PHASED_EVENTS,
        SEEDS_PER_RUN,
        train_tiny,
    )
    from vaura_core.training.tower_train import TowerTrainSettings

    if args.clips > SEEDS_PER_RUN - N_PROBE_CLIPS:
        return fail(f"--clips must be at most {SEEDS_PER_RUN - N_PROBE_CLIPS}")

    if args.device != "cpu" and not args.device.startswith("cuda"):
        return fail(f"{args.device}: unknown device (use cpu or cuda)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return fail("CUDA was asked for but is not available")
    torch.set_num_threads(args.threads)
    fade_start, fade_end = args.onset_fade or ONSET_FADE
    motion_weight = MOTION_WEIGHT if args.motion_weight is None else args.motion_weight
    logging.getLogger("vaura_core").setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("vaura_core").addHandler(handler)
    logging.getLogger("vaura_core").propagate = False
    try:
        report = train_tiny(
            out,
            seed=args.seed,
            minutes_budget=args.minutes,
            work_dir=Path(args.work) if args.work else None,
            n_clips=args.clips,
            codec_steps=args.codec_steps,
            lm_steps=args.lm_steps,
            tower_steps=args.tower_steps,
            device=args.device,
            workers=args.workers,
            codec_settings=CodecTrainSettings()
            if args.codec_impact_share is None
            else CodecTrainSettings(impact_share=args.codec_impact_share),
            lm_settings=LMTrainSettings(
                aux_weight=args.aux_weight,
                onset_weight=ONSET_WEIGHT if args.onset_weight is None else args.onset_weight,
                onset_fade_start=fade_start,
                onset_fade_end=fade_end,
                motion_weight=motion_weight,
            ),
            tower_settings=TowerTrainSettings(motion_weight=motion_weight),
            config=_config(
                args.video_lookahead,
                args.img_size,
                args.video_lead_steps,
                args.video_phase,
                args.tubelet,
                False if args.impact_cues is None and args.phased_events is False else args.impact_cues,
                args.cue_span,
            ),
            phased_events=PHASED_EVENTS if args.phased_events is None else args.phased_events,
        )
    except Cancelled as exc:
        print(f"vaura train-tiny: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except VauraError as exc:
        return fail(str(exc))
    last = report.lm_history[-1]["loss"] if report.lm_history else float("nan")
    print(
        f"wrote {out} in {report.seconds / 60:.1f} min: codec {report.codec_steps} steps, visual tower "
        f"{report.tower_steps} steps, transformer {report.lm_steps} steps, final loss {last:.3f}"
    )
    return 0
