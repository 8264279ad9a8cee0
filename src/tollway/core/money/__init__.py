"""Money: the ledger (holds, settlement), every price and markup, usage reports."""
