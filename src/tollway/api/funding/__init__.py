"""Funding routes (issue 25): redemption codes and card top-ups (Stripe), each off until configured."""

from fastapi import APIRouter

from tollway.api.funding import codes, stripe

ROUTERS: tuple[APIRouter, ...] = (codes.admin_router, codes.router, stripe.router)
