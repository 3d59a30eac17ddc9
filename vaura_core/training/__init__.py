"""Training vaura-tiny from scratch on Foley World: data, codec, transformer + visual tower.

Entry point: `vaura_core.training.tiny.train_tiny(out_dir, seed, minutes_budget, ...)`.
"""
