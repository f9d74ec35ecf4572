"""Figures and the summary (rules draw_training_map, plot_*, compare_settings, summarize_settings)
in one shared style."""
