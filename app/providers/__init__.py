"""Upstream model providers: one module each, one shape (see base.py)."""
