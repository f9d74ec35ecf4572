"""Figures and the summary (rules draw_training_map, plot_*, compare_settings, summarize_settings,
draw_interactive_map, map_function_space) in one shared style, and their interactive HTML twins."""
