"""Latency and throughput measurement shared by the Compare tab and `python -m webapp bench`."""
