"""Scoring service: loads a model bundle and scores leads over HTTP."""
