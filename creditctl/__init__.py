"""creditctl: the credits ledger and Stripe billing back office."""

__version__ = "0.1.0"
