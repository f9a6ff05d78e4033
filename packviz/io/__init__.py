"""Placements out: CSV and the files serving engines read."""
