"""The daemon's scheduled jobs (monthly resets, hold expiry, reconciliation) and their wiring.

Jobs are plain functions that call one domain function (`jobs.py`); `wiring.py` says
when each runs under APScheduler inside `creditctl daemon`.
"""
