"""Logs and metrics. Nothing here runs per token."""
