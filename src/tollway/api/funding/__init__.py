"""Funding routes (issue 25): redemption codes (and, later, card top-ups), each off until configured."""

from fastapi import APIRouter

from tollway.api.funding import codes

ROUTERS: tuple[APIRouter, ...] = (codes.admin_router, codes.router)
