"""Events out of Tollway (issue 26's usage events, issue 25's low-balance alerts).

Every event is first an outbox row (store/outbox.py), written in the transaction that made it: a usage
row's settlement (core/money/usage_events.py) or an alert's crossing (`alerts.py`). `publisher.py` runs
on every replica, claims due rows for a lease and hands each to its sink: `nats_sink.py` (JetStream,
the event id as `Nats-Msg-Id`), `webhooks.py` (a signed POST under the SSRF rules; also the alerts'
receiver). A failed delivery is retried after a doubling backoff; nothing is dropped, and a repeat
carries the same event id.
"""
