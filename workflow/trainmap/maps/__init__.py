"""Maps and detours (rules draw_training_map, fit_detour_regression), METHOD.md sections 5-6."""
