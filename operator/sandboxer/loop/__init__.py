"""The one cluster-wide accounting, budget and idle loop (pure of kopf; see controller/loop.py)."""
