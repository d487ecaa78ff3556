"""What support staff see: `account_view.account_view`, one user's credits, plan, subscription,
holds and recent usage on one screen. It reads the ledger, accounts and billing alike, so it
sits above all three (they never import it)."""
