"""Reproducible data cuts: one study's lake slices frozen, read-only, under a name, with a
manifest of every file's SHA-256; every export can be produced again from a cut."""
