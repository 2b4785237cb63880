"""Sanji domain core: pure Python, no I/O."""
