"""Provenance: what verified attestations prove about how an image was built.

- ``slsa``: SLSA provenance v0.1 / v0.2 / v1 normalised into :class:`~.slsa.Provenance`.
- ``level``: the SLSA build level from the policy's trusted builders.
- ``vsa``: SLSA Verification Summary Attestations accepted for an image.
- ``reproducibility``: independent builds, rebuild links and reproduced VSAs.

Everything here consumes verified facts from ``controller.verify`` only.
"""
