"""Funding routes (issue 25): redemption codes, x402 top-ups (and, later, card top-ups), each off until configured."""

from fastapi import APIRouter

from tollway.api.funding import codes, x402

ROUTERS: tuple[APIRouter, ...] = (codes.admin_router, codes.router, x402.router)
