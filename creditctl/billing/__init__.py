"""Stripe billing: everything creditctl asks of Stripe, and the subscription state it keeps.

`gateway.Gateway` is the one door to Stripe; `request_keys` gives every write its stored
idempotency key. Operators' side: `customers`, `catalog` (plans sync and drift), `links`
(checkout, portal), `changes` (change, cancel, resume). Local state, shared with the
webhooks: `subscriptions` (recording a subscription), `period_credits`, `plan_moves`,
`subscription_status`, `subscription_views`; `payloads` reads both API generations.
"""
