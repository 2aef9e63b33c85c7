"""The benchmarks of issue 7; ``python -m bench`` (``make bench``) runs them all."""
