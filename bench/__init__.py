"""Benchmark harness of imaging-consent (``make bench``); see bench/README.md."""
