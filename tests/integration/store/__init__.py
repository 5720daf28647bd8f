"""The store conformance suite: every test here runs on every Store (``stores.STORES``)."""
