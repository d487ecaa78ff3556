"""The credits ledger: the only code that writes ledger entries, grants and holds.

Public surface, by module (import from the module; this file imports nothing, so the
render scripts' fast path can load `fastpath` without SQLAlchemy):
- `spending.deduct`, `holds.reserve|capture|release|expire|open_holds`,
  `corrections.grant|adjust|reverse`, `balances.balance`, `history.history`,
  `sweep.sweep_due`, `audit.verify|audit_records`: what the CLI, daemon and jobs call;
- `fastpath.deduct|check|balance`: the same rules on the bare driver (`rules` is the one
  algorithm both run);
- `policy.Policy` (the configurable rules) and `results` (what operations answer).
"""
