"""Stripe webhooks: verify, store first, process each event exactly once.

`receive.receive` (the daemon's endpoint), `processing.process|replay|backfill` (the CLI and
the retry job), `events.list_events|show_event`; handlers are registered in
`handlers.HANDLERS`, and `waiting` finds deferred and unmapped events again.
"""
