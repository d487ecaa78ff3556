"""The daemon's scheduled jobs (monthly resets, hold expiry, reconciliation) and their wiring.

Jobs are plain functions: open a session, call one domain function. The hold
sweep is `creditctl.holds.expire`; the APScheduler wiring arrives with the daemon.
"""
