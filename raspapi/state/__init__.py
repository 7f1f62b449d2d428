"""Kept state: SQLite storage, the core database, the per-plugin read cache."""
