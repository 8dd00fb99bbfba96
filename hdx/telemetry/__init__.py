"""Experience telemetry: what each viewer actually experiences, why, and where it is shown.

- :mod:`.experience`: the score (0..100), its grade and the likely cause, from evidence;
- :mod:`.session`: one viewer's measurements (client reports, server ticks) over time;
- :mod:`.alerts`: one structured warning per bad episode;
- :mod:`.metrics`: the Prometheus export behind ``/metrics``.

docs/telemetry.md documents the formula, thresholds, metric names and labels.
"""
