"""What an export has included, kept in the sink so that history is never rewritten silently.

`ledger_files` are the ledger files of the period's own hours; `corrections` are late files of
earlier, closed periods that this period carries as ChargeClass=Correction rows. Once `closed`,
both sets are frozen: re-exporting gives the same files, and anything newer for the period goes
into a later period's corrections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sandboxer.storage import BlobStore

STATE_NAME = "export-state.json"


@dataclass(slots=True)
class ExportState:
    period: str
    closed: bool = False
    ledger_files: dict[str, str] = field(default_factory=dict)  # ledger key → sha256
    corrections: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = {
            "period": self.period,
            "closed": self.closed,
            "ledgerFiles": self.ledger_files,
            "corrections": self.corrections,
        }
        return json.dumps(body, sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> ExportState:
        body = json.loads(data)
        return cls(
            period=body["period"],
            closed=bool(body["closed"]),
            ledger_files=dict(body.get("ledgerFiles", {})),
            corrections=dict(body.get("corrections", {})),
        )


def state_key(period: str) -> str:
    return f"metadata/BILLING_PERIOD={period}/{STATE_NAME}"


def load_states(sink: BlobStore) -> dict[str, ExportState]:
    """Every period's export state found in the sink, by period label."""
    states = {}
    for key in sink.list_keys("metadata/"):
        if key.endswith("/" + STATE_NAME):
            data = sink.get_bytes(key)
            if data is not None:
                state = ExportState.from_bytes(data)
                states[state.period] = state
    return states
