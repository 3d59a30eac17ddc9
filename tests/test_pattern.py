import torch

from vaura_core.model.pattern import build_delayed, pattern_mask, revert_delayed


def test_round_trip_and_layout():
    codes = torch.randint(0, 1024, (2, 9, 221))
    seq = build_delayed(codes, 1024)
    assert seq.shape == (2, 9, 230)
    assert (seq[:, :, 0] == 1024).all()  # the BOS column
    for q in range(9):
        assert (seq[:, q, : q + 1] == 1024).all()
        assert torch.equal(seq[:, q, q + 1 : q + 1 + 221], codes[:, q])
    assert (seq[:, :8, -1] == 1024).all() and torch.equal(seq[:, 8, -1], codes[:, 8, -1])
    assert torch.equal(revert_delayed(seq), codes)


def test_mask_matches_layout():
    mask = pattern_mask(4, 5)
    seq = build_delayed(torch.zeros(1, 4, 5, dtype=torch.long), special=7)[0]
    assert torch.equal(mask, seq == 0)
    assert mask.sum() == 4 * 5


def test_unknown_markers_land_on_pattern_slots():
    codes = torch.full((1, 3, 4), -1)
    codes[..., :2] = 5
    seq = build_delayed(codes, 9)
    assert ((seq == -1) == (pattern_mask(3, 4)[None] & (seq != 5) & (seq != 9))).all()
    assert (seq == -1).sum() == 3 * 2
