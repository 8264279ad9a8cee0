"""Funding routes (issue 25): redemption codes, card top-ups (Stripe) and low-balance alerts, each off
until configured."""

from fastapi import APIRouter

from tollway.api.funding import alerts, codes, stripe

ROUTERS: tuple[APIRouter, ...] = (codes.admin_router, codes.router, stripe.router, alerts.router)
