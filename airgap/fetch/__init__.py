"""The connected side: ``airgap fetch`` turns a plan into one verified bundle, pulling the
registry image without a daemon, the binaries with their ``.sha512`` and ``.asc``, and
the packages with their ``.sig`` (``airgap.fetch.run``). No other stage imports it.
"""
