"""Summaries and reports people read."""
