"""Account routes: operator admin, keys (NightVeil, Venice, web3), rate limits, billing."""
