"""Thin Ray Serve shims over `cluster` and the app builder; the only package that imports Ray."""
