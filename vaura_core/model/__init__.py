"""The V-AURA network: visual encoder, fusion transformer, delayed pattern and codec adapter."""
