"""Benchmarks: the provider against the floor (raw httpx + json.loads). See run.py."""
