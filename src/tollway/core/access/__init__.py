"""Who may call: keys, accounts, the content policy and web3 wallets."""
