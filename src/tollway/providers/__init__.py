"""Upstream adapters. A provider knows protocols, never accounts or money."""
