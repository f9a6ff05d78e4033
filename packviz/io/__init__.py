"""Placements out: Explore's CSV and JSON (``export``), every engine's placement file (``engines``), and
the moves between two plans (``moves``)."""
