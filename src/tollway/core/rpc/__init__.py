"""Venice's crypto JSON-RPC proxy (issue 23, `POST crypto/rpc/{network}`): a client's JSON-RPC 2.0 call
or batch, checked against the method allow-list, sent to the operator's node for that network
(TOLLWAY_CRYPTO_RPC_NETWORKS), and billed per credit through the one charge path (core/admission.py).

`methods.py` is Venice's method table (three pricing tiers, the refused stateful-filter and
WebSocket-only methods, the chain families) and the credits of an answered call; `proxy.py` admits,
holds the worst case, calls the node and settles the credits the node's answer earned.
"""
