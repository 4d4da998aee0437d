"""The period manifest: written last, it is the reader's signal that the period is complete."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sandboxer.api.types import rfc3339
from sandboxer.chargeback.focus_spec import columns_for
from sandboxer.chargeback.periods import BillingPeriod

MANIFEST_NAME = "manifest.json"


def iso(instant: datetime | None) -> str | None:
    return None if instant is None else rfc3339(instant)


def manifest_key(period: str) -> str:
    return f"metadata/BILLING_PERIOD={period}/{MANIFEST_NAME}"


def build_manifest(
    *,
    period: BillingPeriod,
    focus_version: str,
    closed: bool,
    generated_at: datetime,
    watermark: datetime | None,
    files: list[dict[str, Any]],
    summary_files: list[dict[str, Any]],
    totals: dict[str, Any],
) -> bytes:
    body = {
        "billingPeriod": period.label,
        "billingPeriodStart": iso(period.start),
        "billingPeriodEnd": iso(period.end),
        "chargesThrough": iso(period.cutoff),
        "closed": closed,
        "focusVersion": focus_version,
        "generatedAt": iso(generated_at),
        "ledgerWatermark": iso(watermark),
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "physicalType": str(c.arrow_type),
                "requirement": c.requirement,
                "nullable": c.nullable,
            }
            for c in columns_for(focus_version)
        ],
        "files": files,
        "summaryFiles": summary_files,
        "totals": totals,
    }
    return json.dumps(body, indent=2, sort_keys=True).encode() + b"\n"
