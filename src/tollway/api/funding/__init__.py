"""Funding routes (issue 25): redemption codes, card top-ups (Stripe), x402 top-ups, USDC deposit
addresses and low-balance alerts, each off until configured."""

from fastapi import APIRouter

from tollway.api.funding import alerts, codes, deposits, stripe, x402

ROUTERS: tuple[APIRouter, ...] = (
    codes.admin_router,
    codes.router,
    stripe.router,
    x402.router,
    alerts.router,
    deposits.router,
)
