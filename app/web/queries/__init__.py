"""Read models: what pages list and search, read-only."""
