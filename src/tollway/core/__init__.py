"""The domain: no HTTP in here."""
