"""The operator's and a reseller's business actions (issue 24, the admin API): find and edit accounts,
suspend and resume them, adjust balances with a reason, edit and rotate keys, and the audit log of it all.

Above `access/` and `money/`: it edits what those packages read, through their APIs (the ledger's
`credit` for every balance change). `api/accounts/operator.py` and the CLI are its thin callers.
"""
