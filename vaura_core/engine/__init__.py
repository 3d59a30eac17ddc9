"""Clip-level generation: windows over any clip length, region regeneration, variations, splicing."""
