"""Chargeback: ledger rows → FOCUS 1.2 rows → Parquet and gzip CSV, with a manifest and summary.

Entry points: `export_period` (one billing period to a sink) and `due_exports` (what the
operator's schedule should run now).
"""
