"""Webhooks: signed delivery of outbox events to subscribed endpoints (docs/webhooks.md).

``signing`` implements Standard Webhooks signatures, ``network`` the SSRF-guarded HTTP client,
``endpoints`` the admin's management of endpoints. The workers' delivery lives in the outbox
(``moderation.outbox.webhooks``).
"""
