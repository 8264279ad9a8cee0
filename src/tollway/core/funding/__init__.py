"""Funding rails (issue 25): money arriving from outside, each credited once with its source recorded."""
