"""The bottom floor: the catalog YAML schema, clock, ids, token counting, URL fetching. Imports nothing of Tollway but errors and settings."""
