"""Serving models in the API server's process: resolve, load, batch and generate, off the event loop."""
