"""Metadata in SQLite and file blobs on disk, opened by the server process alone."""
