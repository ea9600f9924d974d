"""Helpers that build real test material: PKI, registries, pushed images and evidence."""
