"""Alignment measurement: the onset detector, material classification, pooling, and the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from vaura_core.evaluation.onsets import detect_onsets
from vaura_core.evaluation.sync import (
    ClipScore,
    classify_material,
    codec_round_trip,
    evaluate_sync,
    pool_scores,
    reference_onsets,
    score_clip,
)
from vaura_core.foley_world.materials import MATERIALS
from vaura_core.foley_world.scene import SceneObject, SceneSpec, build_scene
from vaura_core.foley_world.sound import impact_sound, object_voice

SR = 44100


def _impacts(times: list[float], material: str, seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    voice = object_voice(seed, SceneObject(0, MATERIALS[material], 0.075, 0))
    out = np.zeros(int(seconds * SR))
    for t in times:
        s = impact_sound(material, voice, 0.6, rng, SR)
        i = round(t * SR)
        out[i : i + len(s)] += s[: len(out) - i]
    return out + 1e-4 * rng.standard_normal(len(out))


def test_detector_finds_rendered_impacts_within_25_ms():
    times = [0.3, 0.75, 1.2, 1.9, 2.4, 3.1]
    for material in MATERIALS:
        found = detect_onsets(_impacts(times, material), SR)
        assert len(found) == len(times), (material, found)
        assert np.abs(found - np.array(times)).max() <= 0.025, (material, found)


def test_silence_has_no_onsets():
    assert len(detect_onsets(np.zeros(SR), SR)) == 0


@pytest.mark.parametrize("material", sorted(MATERIALS))
def test_material_is_read_from_the_spectrum(material):
    audio = _impacts([0.5, 1.5], material, seconds=2.5)
    assert classify_material(audio, SR, 0.5) == material
    assert classify_material(audio, SR, 1.5) == material


def test_material_ignores_the_ring_of_an_earlier_sound():
    # A metal ring still sounding when a drum is hit: the drum is what changed.
    audio = _impacts([0.5], "metal", seconds=2.0) + _impacts([0.6], "drum", seconds=2.0, seed=1)
    assert classify_material(audio, SR, 0.6) == "drum"


def test_reference_onsets_merge_collisions_and_keep_impact_materials():
    events = [
        {"time": 0.4, "kind": "impact", "material": "wood"},
        {"time": 0.4, "kind": "impact", "material": "metal"},
        {"time": 1.0, "kind": "slide", "material": "glass"},
    ]
    times, materials = reference_onsets(events)
    assert times.tolist() == [0.4, 1.0]
    assert materials == [{"wood", "metal"}, set()]


def test_events_closer_than_the_suppression_radius_are_one_onset():
    events = [
        {"time": 2.0, "kind": "impact", "material": "wood"},
        {"time": 2.04, "kind": "slide", "material": "wood"},  # one frame later: not resolvable
        {"time": 2.08, "kind": "impact", "material": "drum"},  # 80 ms after the group's first: new onset
        {"time": 3.0, "kind": "slide", "material": "glass"},
        {"time": 3.04, "kind": "impact", "material": "glass"},
    ]
    times, materials = reference_onsets(events)
    assert times.tolist() == [2.0, 2.08, 3.0]
    assert materials == [{"wood"}, {"drum"}, {"glass"}]


def test_a_track_cut_off_while_sounding_has_no_onset_at_its_end():
    ring = _impacts([0.8], "metal", seconds=1.0)
    assert np.abs(ring[-200:]).max() > 0.01  # still sounding at the cut
    onsets = detect_onsets(ring, SR)
    assert onsets.tolist() == pytest.approx([0.8], abs=0.02)


def test_pooling_sums_counts_over_clips():
    a = ClipScore(10, 8, {"50": 8, "100": 8}, [5.0, -5.0], 8, 8)
    b = ClipScore(10, 12, {"50": 6, "100": 9}, [40.0], 4, 2)
    out = pool_scores([a, b])
    assert out["precision_50"] == pytest.approx(14 / 20)
    assert out["recall_50"] == pytest.approx(14 / 20)
    assert out["f1_100"] == pytest.approx(17 / 20)
    assert out["mean_abs_error_ms"] == pytest.approx(50 / 3)
    assert out["max_abs_error_ms"] == pytest.approx(40.0)
    assert out["material_accuracy"] == pytest.approx(10 / 12)


def test_detector_sanity_on_ground_truth_audio():
    """The whole pipeline on Foley World's own sound track scores (almost) perfectly."""
    scores = []
    for seed in (101, 202, 303):
        scene = build_scene(SceneSpec(seed, 6.0))
        scores.append(score_clip(scene.audio, SR, scene.events))
    out = pool_scores(scores)
    assert out["reference_onsets"] >= 15
    assert out["f1_50"] >= 0.95, out
    assert out["material_accuracy"] >= 0.95, out
    assert out["max_abs_error_ms"] <= 50, out


def test_shifted_ground_truth_fails_the_50_ms_window():
    scene = build_scene(SceneSpec(404, 6.0))
    shifted = np.concatenate([np.zeros(int(0.3 * SR), dtype=np.float32), scene.audio])[: len(scene.audio)]
    true, moved = score_clip(scene.audio, SR, scene.events), score_clip(shifted, SR, scene.events)
    # Dense scenes leave some chance matches (that is what the control measures), far fewer than true ones.
    assert moved.matched["50"] <= 0.5 * true.matched["50"], (moved, true)


def test_shipped_model_makes_timed_sounds():
    """vaura-tiny on fresh clips, scored like `vaura eval-sync`: it must keep what MODEL_CARD.md reports,
    above all that its sounds follow the clip's own video far better than another clip's.

    The floors sit below the shipped weights' measurement on these exact clips and seeds (deterministic),
    with margin for float differences between machines.
    """
    from vaura_core.weights.registry import DEFAULT_MODEL, ModelRegistry

    model = ModelRegistry().load(DEFAULT_MODEL)
    report = evaluate_sync(model, DEFAULT_MODEL, count=5, seed=11, duration=5.12)
    gen, ctl = report.generated, report.control
    assert gen["detected_onsets"] > 0, report  # it makes sounds, not silence
    assert gen["f1_50"] >= F1_50_FLOOR, report
    assert gen["f1_50"] >= ctl["f1_50"] + VIDEO_GAIN_FLOOR, report  # the picture decides the timing
    assert report.ground_truth["f1_50"] >= 0.98, report  # the detector itself is sound
    assert report.candidates == 3  # the embedded model chooses among candidates by default


# Measured with the shipped weights (run 24, cue temperature 0.4, cues from two segmentations, the best
# of 3 candidates per stretch) on these five clips (5 x 5.12 s, seed 11, two chains each by default):
# F1 +/-50 ms 0.893, control (another clip's video) 0.175 (one candidate: 0.860 against 0.157; one
# segmentation too: 0.832 against 0.178; run 22: 0.874 against 0.196, though on the card's eight
# ten-clip sets run 24 leads it by 0.01-0.13); a few short clips leave the control much chance (run 16
# on the first three alone: 0.448 against 0.271), so five keep the gain floor clear. Another CPU draws
# other tokens from the same seeds: the floors leave room for sets as far apart as the fifteen clip
# sets of the training notes (0.78-0.90).
F1_50_FLOOR = 0.78
VIDEO_GAIN_FLOOR = 0.55


def test_shipped_codec_keeps_every_material():
    """The material target needs a codec whose round trip keeps each material's band: the one shipped
    before the tenth session moved drums into the wood band and dropped most glass ticks.

    On these six clips (6 x 5.12 s, seed 11) the shipped codec's round trip scores material accuracy
    0.90 (50 matched impacts) and F1 +/-50 0.833; the previous codec 0.698 and 0.761.
    """
    from vaura_core.foley_world.writer import clip_seed
    from vaura_core.weights.registry import DEFAULT_MODEL, ModelRegistry

    model = ModelRegistry().load(DEFAULT_MODEL)
    scores = []
    for i in range(6):
        scene = build_scene(SceneSpec(clip_seed(11, i), 5.12))
        scores.append(score_clip(codec_round_trip(model, scene.audio, SR), SR, scene.events))
    pooled = pool_scores(scores)
    assert pooled["material_accuracy"] >= 0.85, pooled
    assert pooled["f1_50"] >= 0.78, pooled


def test_eval_sync_cli_checks_its_numbers(capsys):
    from vaura_core.cli import main

    assert main(["eval-sync", "--count", "2", "--chains", "0"]) == 2
    assert "--chains" in capsys.readouterr().err
    assert main(["eval-sync", "--count", "2", "--candidates", "9"]) == 2
    assert "--candidates" in capsys.readouterr().err
    assert main(["eval-sync", "--count", "1"]) == 2
    assert "--count" in capsys.readouterr().err
