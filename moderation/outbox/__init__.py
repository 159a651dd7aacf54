"""The outbox: what the service tells the outside world, written in the transaction of the change
and delivered later by workers, at least once.

``events`` records outbox events (webhooks' source); ``leasing`` is how a worker claims rows and
when it tries again; ``webhooks`` fans events out to endpoints and delivers them; ``mail`` sends
the mail outbox over SMTP; ``worker`` is the loop that runs them (``moderation worker`` or a
thread of ``moderation serve``). Signing and the guarded HTTP client stay in
``moderation.webhooks``, queueing and rendering mail in ``moderation.mail``.
"""
