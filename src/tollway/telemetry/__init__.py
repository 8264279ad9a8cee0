"""Logs, metrics, traces and the access log: used by every floor above, importing none of them."""
