"""Benchmarks of hdx's parts (``hdx bench KIND``); results go to ``benchmarks/results/``."""
