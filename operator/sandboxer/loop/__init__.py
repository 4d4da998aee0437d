"""The one cluster-wide accounting, budget and idle loop (pure of kopf; the kopf side is
controller/loop_runner.py).

`accounting_loop.AccountingLoop` runs a pass over a `snapshot.Snapshot`; `metering`, `budgets`,
`reclaim` and `status_writes` each own one concern and its state; `shared` is what admission reads.
"""
