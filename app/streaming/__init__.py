"""Generations (one producer per stream), their logs, and the SSE responder."""
