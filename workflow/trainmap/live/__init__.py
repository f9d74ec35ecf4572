"""A live map: where a run being trained is on a fitted map, online (docs/live.md).

``live.json`` (written with the map, ``trainmap.live.build``) holds what the map knows
that a running seed needs: the features' global means and SDs, the kept HMM, the states'
kinds and the fit runs' decoded paths with their convergence steps. ``LiveMap`` reads it
and ``LiveRun`` filters one run checkpoint by checkpoint; both use NumPy only, so
``trainmap.record`` can use them inside a training process (no SciPy, no hmmlearn).
"""
