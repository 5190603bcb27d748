"""Shared glue for the himtok apps (data sources, run directories, reports)."""
