"""Across the gap: a bundle in volumes that fit the medium (``airgap split``, ``airgap
join``, ``airgap verify VOLUME``) and a delta merged into its base (``airgap merge``).
It works on a bundle's files as SHA512SUMS and bundle.json list them, whatever they are.
"""
