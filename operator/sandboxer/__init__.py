"""Sandboxer: self-service GPU sandboxes with metered budgets, idle reclaim and FOCUS chargeback."""

__version__ = "0.1.0"

GROUP = "sandboxer.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
