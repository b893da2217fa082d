"""Editing, reviewing and comparing trajectories: edits, alignment, step cards, pairs, team review."""
