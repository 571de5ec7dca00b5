"""Who may do what: API keys, signed stream URLs, limits."""
