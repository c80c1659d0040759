"""Offline multi-agent datasets: on-disk formats, in-memory storage, the DataModule."""
