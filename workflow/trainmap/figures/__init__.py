"""Figures of a setting: the static PNGs and their interactive, self-contained HTML twins."""
