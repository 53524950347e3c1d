"""Loggers, plots and W&B helpers."""
