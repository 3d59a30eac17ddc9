"""The `vaura` preset has exactly the released checkpoint's tensor names and shapes (weight norm folded)."""

from pathlib import Path

from vaura_core.model.config import preset
from vaura_core.model.vaura import build_model

REFERENCE = Path(__file__).parent / "data" / "vaura-state-dict.txt"


def reference_shapes() -> dict[str, tuple[int, ...]]:
    """The reference list with each weight_g/weight_v pair folded into one `.weight` (shape of v)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for line in REFERENCE.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape, _dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            key = key[: -len("_v")]
        shapes[key] = dims
    return shapes


def test_reference_list_is_complete():
    lines = [ln for ln in REFERENCE.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 757


def test_vaura_preset_matches_release_names_and_shapes():
    model = build_model(preset("vaura"), device="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = reference_shapes()
    assert sorted(set(ref) - set(ours)) == []
    assert sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}


def test_parameter_counts_match_the_spec():
    model = build_model(preset("vaura"), device="meta")
    count = {
        prefix: sum(t.numel() for k, t in model.state_dict().items() if k.startswith(prefix))
        for prefix in ("visual_feature_extractor.", "sampler.")
    }
    assert count["visual_feature_extractor."] == 122_440_704
    assert count["sampler."] == 694_554_696 - 9 * 1024  # nine folded (1024, 1, 1) weight_g tensors
