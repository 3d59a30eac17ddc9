"""Build tooling for the VAURA Studio application bundle and its platform installers."""
