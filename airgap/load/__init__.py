"""The isolated side: ``airgap load`` verifies a bundle, then loads its image into Docker or
pushes it, runs the package registry, lays out the artifact tree and writes the Fleet
settings (``airgap.load.run``); ``airgap serve`` and ``airgap export-image`` live here
too. No other stage imports it; its modules are imported one by one, as each command
needs them (the Docker client and aiohttp are slow to import).
"""
