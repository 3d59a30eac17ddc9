"""Measurements of generated audio against ground truth (`sync.evaluate_sync`)."""
