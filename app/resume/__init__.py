"""Where stream logs live beyond the generation's own process: memory or Redis."""
