"""MODEL_CARD.md of a trained model folder, rendered from its manifest (and an evaluation, if given)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vaura_core.errors import VauraError
from vaura_core.model.config import VAuraConfig, preset

CARD_FILE = "MODEL_CARD.md"


def _params(cfg: VAuraConfig) -> dict[str, int]:
    from vaura_core.model.vaura import build_model

    model = build_model(cfg, device="meta")
    return {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}


def _curve_table(rows: list[dict[str, float]]) -> list[str]:
    if not rows:
        return ["(not recorded: this stage was reused from an earlier run)"]
    # Every column of any row: a run resumed with different settings may add columns midway.
    keys = ["step", *sorted({k for row in rows for k in row} - {"step"})]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row.get(k, float('nan')):.4g}" for k in keys) + " |")
    return lines


def _candidates_note(candidates: int) -> str:
    """How the measured takes were chosen, for the card's command line."""
    if candidates <= 1:
        return ""
    return f"; each stretch the best-aligned of {candidates} candidates (`engine.candidates`)"


def _eval_lines(ev: dict[str, Any]) -> list[str]:
    gen, ctl, gt = ev["generated"], ev["control"], ev["ground_truth"]

    def row(name: str, m: dict[str, Any]) -> str:
        return (
            f"| {name} | {m['f1_50']:.3f} | {m['precision_50']:.3f} | {m['recall_50']:.3f} | "
            f"{m['f1_100']:.3f} | {m['mean_abs_error_ms']:.1f} | {m['max_abs_error_ms']:.1f} | "
            f"{m['material_accuracy']:.3f} |"
        )

    targets = ev.get("targets", {})
    return [
        f"Command: `{ev.get('command', 'vaura eval-sync')}` ({ev['count']} fresh Foley World clips of "
        f"{ev['duration']} s, scene seeds {ev['scene_seeds'][0]}..{ev['scene_seeds'][-1]}, sampling "
        f"temperature {ev['sampling']['temperature']}, top-k {ev['sampling']['top_k']}, "
        f"CFG {ev['sampling']['cfg_scale']}{_candidates_note(ev.get('candidates', 1))}).",
        "",
        "| audio | F1 ±50 ms | precision ±50 ms | recall ±50 ms | F1 ±100 ms | mean abs error (ms) "
        "| worst abs error (ms) | material accuracy |",
        "|---|---|---|---|---|---|---|---|",
        row(f"generated ({ev.get('model', 'model')})", gen),
        row("control: another clip's video", ctl),
        row("ground truth (detector sanity)", gt),
        *(
            [row("ground truth through the codec (ceiling)", ev["codec_ceiling"])]
            if "codec_ceiling" in ev
            else []
        ),
        "",
        "Targets: " + ", ".join(f"{k} {v}" for k, v in targets.items()) + ".",
        "Met: " + ", ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in ev.get("passed", {}).items()) + ".",
    ]


def _impact_crop_text(share: float) -> str:
    if share <= 0:
        return ""
    return (
        f"; {share:.0%} of each batch's excerpts start just before an impact of a material drawn "
        "evenly, the rest at random offsets"
    )


def _fade_text(fade: tuple[float, float]) -> str:
    start, end = fade
    if start >= 1.0:
        return ""
    if start == end:
        return f", until {start:.0%} of the steps (then 1)"
    return f" until {start:.0%} of the steps, falling linearly to 1 at {end:.0%}"


def _phased_flag(phased: bool) -> str:
    from vaura_core.training.tiny import PHASED_EVENTS

    if phased == PHASED_EVENTS:
        return ""
    return " --phased-events" if phased else " --no-phased-events"


def _alignment_note(cfg: VAuraConfig) -> str:
    lm = cfg.lm
    if lm.video_lead_steps is not None:
        phase = ", and how many audio steps into that token it is (`lm.video_phase`)"
        cues = (
            "; the step where each frame starts also gets that frame's impact probabilities from the "
            "model's own event head (`lm.impact_cues`)"
            + (
                f", and the {lm.impact_cue_span - 1} steps before it a countdown (`lm.impact_cue_span`)"
                if lm.impact_cue_span > 1
                else ""
            )
            + (
                f"; in generation the head's logits are divided by {lm.impact_cue_temperature:g} "
                "(`lm.impact_cue_temperature`)"
                if lm.impact_cue_temperature != 1
                else ""
            )
            + (
                f", and the head reads each token in {lm.impact_cue_views} segmentations of the clip (its "
                f"own and shifted by 1/{lm.impact_cue_views} of a segment), averaged with less weight on "
                "segment edges (`lm.impact_cue_views`)"
                if lm.impact_cue_views > 1
                else ""
            )
        )
        return (
            f"; each position sees the visual token at the time of the audio step {lm.video_lead_steps} "
            "ahead (`lm.video_lead_steps`; the original aligns by position, token p // 7)"
            + (phase if lm.video_phase else "")
            + (cues if lm.impact_cues else "")
        )
    if lm.video_lookahead:
        return (
            f"; each position sees the visual token {lm.video_lookahead} ahead of the original's "
            "(`lm.video_lookahead`)"
        )
    return ""


def render_model_card(manifest: dict[str, Any], cfg: VAuraConfig, evaluation: dict[str, Any] | None) -> str:
    tr = manifest.get("training", {})
    st = tr.get("settings", {})
    params = _params(cfg)
    aux_weight = st.get("aux_weight", (st.get("lm") or {}).get("aux_weight", 0.0))
    lm_st = st.get("lm") or {}
    onset_weight = lm_st.get("onset_weight", 0.0)
    motion_weight = float(lm_st.get("motion_weight", 0.0))  # older records: no motion loss
    # Older records have no fade: their weight held to the end.
    fade = (float(lm_st.get("onset_fade_start", 1.0)), float(lm_st.get("onset_fade_end", 1.0)))
    # Older manifests record no impact share: all their codec excerpts were at random offsets.
    impact_share = float((st.get("codec") or {}).get("impact_share", 0.0))
    tiny_lm = preset("tiny").lm
    lead = cfg.lm.video_lead_steps
    if lead is None:
        align_flag = f" --video-lookahead {cfg.lm.video_lookahead}"
    else:
        align_flag = f" --video-lead-steps {lead}" if lead != tiny_lm.video_lead_steps else ""
        if cfg.lm.video_phase != tiny_lm.video_phase:
            align_flag += " --video-phase" if cfg.lm.video_phase else " --no-video-phase"
        if bool(cfg.lm.impact_cues) != bool(tiny_lm.impact_cues):
            align_flag += " --impact-cues" if cfg.lm.impact_cues else " --no-impact-cues"
        if cfg.lm.impact_cues and cfg.lm.impact_cue_span != tiny_lm.impact_cue_span:
            align_flag += f" --cue-span {cfg.lm.impact_cue_span}"
    img_size = cfg.visual.img_size
    from vaura_core.training.codec_train import CodecTrainSettings
    from vaura_core.training.tiny import MOTION_WEIGHT, N_CLIPS, ONSET_FADE

    world = f" {st['foley_world']}" if st.get("foley_world") else ""  # older records lack it
    aux_flag = (
        (f" --clips {st['n_clips']}" if st.get("n_clips", N_CLIPS) != N_CLIPS else "")
        + (f" --aux-weight {aux_weight:g}" if aux_weight != 1.0 else "")
        + (f" --onset-weight {onset_weight:g}" if onset_weight else "")
        + (f" --onset-fade {fade[0]:g} {fade[1]:g}" if onset_weight and fade != ONSET_FADE else "")
        + (f" --motion-weight {motion_weight:g}" if motion_weight != MOTION_WEIGHT else "")
        + (
            f" --codec-impact-share {impact_share:g}"
            if impact_share != CodecTrainSettings().impact_share
            else ""
        )
        + align_flag
        + _phased_flag(bool(st.get("phased_events")))  # older records: plain labels
        + (f" --img-size {img_size}" if img_size != preset("tiny").visual.img_size else "")
        + (f" --tubelet {cfg.visual.tubelet}" if cfg.visual.tubelet != preset("tiny").visual.tubelet else "")
        + (f" --device {st['device']}" if st.get("device", "cpu") != "cpu" else "")
    )
    aux_lines = (
        [
            f"- auxiliary event loss on the visual tower (weight {aux_weight:g}): a linear head, "
            + (
                "the model's own cue head (`lm.impact_cues`, shipped), "
                if cfg.lm.impact_cues
                else "used only in training and not shipped, "
            )
            + f"reads every raw visual token ({cfg.visual.tubelet} frames) and names the material of the "
            "loudest impact starting on its frames"
            + (" and the frame it starts on" if st.get("phased_events") else "")
            + ", or none; cross-entropy "
            "weighted by the inverse square root of the class frequencies; columns `aux` (that loss) and "
            "`aux_acc` (the head's accuracy on impact tokens"
            + (", material and frame" if st.get("phased_events") else "")
            + ") of the curve below",
        ]
        if aux_weight
        else []
    ) + (
        [
            f"- dense motion loss on the visual tower (weight {motion_weight:g}, both its stages): a linear "
            "head, used only in training, reads each patch token before the spatial pooling and predicts "
            "whether an object is there, its velocity, the push on it besides gravity, how near the next "
            "object is and whether the two collide (`vaura_core/training/motion.py`); column `motion` "
            "of the curves"
        ]
        if motion_weight
        else []
    )
    tower_flag = f" --tower-steps {tr.get('tower_steps')}" if tr.get("tower_steps") else ""
    stream = st.get("stream")
    stream_lines = (
        [
            f"- transformer data: a stream of fresh Foley World clips rendered and encoded while it "
            f"trains ({stream.get('clips_per_step')} new clips per step, batches drawn from the newest "
            f"{stream.get('buffer_clips')}): {st.get('stream_clips')} clips, scene seeds "
            f"{st.get('stream_seeds', ['?', '?'])[0]}..{st.get('stream_seeds', ['?', '?'])[-1]}; held out "
            f"for the video-reliance probe: scenes {st.get('probe_seeds')} (columns `probe_own` and "
            "`probe_other` of the transformer curve: loss of their windows with their own video and "
            "with another window's)",
        ]
        if stream
        else []
    )
    tower_lines = (
        [
            f"- visual tower pretraining on impact events (before the transformer): "
            f"{tr.get('tower_steps')} steps in {tr.get('tower_seconds')} s on fresh clips taken from the "
            f"end of the seed block; settings {st.get('tower')}",
        ]
        if tr.get("tower_steps")
        else []
    )
    lines = [
        f"# {manifest.get('name', cfg.name)}",
        "",
        "A small V-AURA (same code paths as the released model: Segment-AVCLIP-style Motionformer tower, "
        "Llama-style fusion transformer over the delayed pattern of 9 DAC codebooks, 44.1 kHz codec with "
        f"hop {cfg.codec.hop_length} = {cfg.codec.frame_rate:.2f} tokens/s, {cfg.window_seconds:.2f} s "
        f"windows of {cfg.window_tokens} tokens and {cfg.window_segments} x {cfg.visual.tokens_per_segment} "
        "visual tokens), trained from "
        "scratch by VAURA Studio's `vaura train-tiny` on Foley World, our procedural audio-visual data. "
        "It knows only Foley World's sounds (wood, metal, drum and glass impacts; sliding and rolling).",
        "",
        "## Architecture",
        "",
        f"- visual tower: {cfg.visual.img_size} px crop, {cfg.visual.patch_size} px patches, dim "
        f"{cfg.visual.dim}, depth {cfg.visual.depth}, {params['visual_feature_extractor']:,} parameters",
        f"- transformer: {cfg.lm.n_layer} layers, {cfg.lm.n_head} heads, model dim {cfg.model_dim} "
        f"(video {cfg.lm.video_dim} + codec latent {cfg.codec.latent_dim}), {params['sampler']:,} parameters"
        + _alignment_note(cfg),
        f"- codec (`dac.DAC`): encoder dim {cfg.codec.encoder_dim}, decoder dim {cfg.codec.decoder_dim}, "
        f"{cfg.codec.n_codebooks} codebooks of {cfg.codec.codebook_size}, "
        f"{params['audio_encoder']:,} parameters",
        f"- weights: float32, {manifest.get('model_bytes', 0) / 1e6:.1f} MB",
        "",
        "## Training",
        "",
        f"- command: `vaura train-tiny --out DIR --seed {tr.get('seed')} --minutes "
        f"{st.get('minutes_budget')}{aux_flag}`; reproduce exactly with `--codec-steps "
        f"{tr.get('codec_steps')}{tower_flag} --lm-steps {tr.get('lm_steps')}`",
        f"- codec data: {st.get('n_clips')} Foley World{world} clips of {st.get('clip_seconds')} s "
        "(scene seeds "
        f"{st.get('training_seeds', ['?', '?'])[0]}..{st.get('training_seeds', ['?', '?'])[-1]}); "
        f"rendering took {tr.get('data_seconds')} s",
        f"- codec: {tr.get('codec_steps')} steps in {tr.get('codec_seconds')} s; settings {st.get('codec')}; "
        "losses from `dac.nn.loss` (multi-scale mel x15, waveform L1 x1) plus VQ commitment x0.25 and "
        "codebook x1; no adversarial loss" + _impact_crop_text(impact_share),
        *stream_lines,
        *tower_lines,
        f"- transformer + visual tower (jointly, codec frozen): {tr.get('lm_steps')} steps in "
        f"{tr.get('lm_seconds')} s; settings {st.get('lm')}; teacher forcing on the delayed pattern "
        "(L = 230), cross-entropy per codebook averaged over the 9 codebooks, null video for CFG with "
        "probability 0.1"
        + (
            f"; the tokens under a visual token with an impact weigh {1 + onset_weight:g} in that average"
            + _fade_text(fade)
            if onset_weight
            else ""
        ),
        *aux_lines,
        f"- total wall time {tr.get('seconds')} s on {st.get('machine')} ({st.get('device')}, torch "
        f"{st.get('torch')})",
        *([f"- note: {tr['note']}"] if tr.get("note") else []),
        "",
        "### Codec loss curve",
        "",
        *_curve_table(tr.get("codec_curve", [])),
        "",
        *(
            ["### Visual tower pretraining curve", "", *_curve_table(tr["tower_curve"]), ""]
            if tr.get("tower_curve")
            else []
        ),
        "### Transformer loss curve (cross-entropy, nats)",
        "",
        *_curve_table(tr.get("lm_curve", [])),
        "",
        "## Measured alignment",
        "",
        *(_eval_lines(evaluation) if evaluation else ["Not evaluated yet: run `vaura eval-sync`."]),
        "",
    ]
    return "\n".join(lines)


def write_model_card(model_dir: Path, evaluation: dict[str, Any] | None = None) -> Path:
    """(Re)write MODEL_CARD.md in `model_dir` atomically from its manifest and config."""
    from vaura_core.weights.store import CONFIG_FILE, _read_config, read_manifest

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    cfg = _read_config(model_dir / CONFIG_FILE)
    text = render_model_card(manifest, cfg, evaluation)
    path = model_dir / CARD_FILE
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{CARD_FILE}.", dir=model_dir)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise VauraError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
