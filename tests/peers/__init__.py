"""Peers written in other languages that the replication tests and benchmarks drive."""
