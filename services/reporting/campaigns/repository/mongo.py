"""Campaigns on MongoDB (pymongo): events ride inside the documents, so a campaign, its end or a
report and their events are one single-document write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    strip_internal,
    with_events,
)
from libs.common.pagination import page
from libs.common.repository_tails import MongoRepository
from services.reporting.campaigns.repository import CampaignFilter, Page

CAMPAIGNS = "campaigns"
REPORTS = "campaign_reports"
CAMPAIGN_INDEXES: list[dict[str, Any]] = [
    {"keys": [("started_at", -1), ("_id", -1)]},
    {"keys": [("status", 1), ("started_at", 1)]},
    *OUTBOX_INDEXES,
]
REPORT_INDEXES: list[dict[str, Any]] = [
    {"keys": [("campaign_id", 1), ("filed_at", 1), ("_id", 1)]},
    *OUTBOX_INDEXES,
]


class MongoCampaignRepository(MongoRepository):
    """CampaignRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = {CAMPAIGNS: CAMPAIGN_INDEXES, REPORTS: REPORT_INDEXES}
    EVENT_COLLECTIONS = (CAMPAIGNS, REPORTS)

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.campaigns = db[CAMPAIGNS]
        self.reports = db[REPORTS]

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        """One campaign by ``_id``, without outbox fields."""
        return strip_internal(self.campaigns.find_one({"_id": campaign_id}))

    def record_campaign(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events; an existing id returns the stored campaign."""
        return _insert(self.campaigns, doc, events)

    def end_campaign(
        self, campaign_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """Guard: still active."""
        result = self.campaigns.update_one(
            {"_id": campaign_id, "status": "active"}, with_events({"$set": dict(fields)}, events)
        )
        return bool(result.matched_count)

    def campaigns_page(self, filters: CampaignFilter, limit: int, cursor: str | None) -> Page:
        """Newest first on the (started_at, _id) index."""
        selector: dict[str, Any] = {}
        if filters.status is not None:
            selector["status"] = filters.status
        if filters.exercise is not None:
            selector["exercise"] = filters.exercise
        if filters.participant is not None:
            selector["participants.code"] = filters.participant
        rows, nxt = page(
            self.campaigns, selector, sort_field="started_at", limit=limit, cursor=cursor
        )
        return [strip_internal(r) or {} for r in rows], nxt

    def active_campaigns(self) -> list[dict[str, Any]]:
        """Equality on the status index."""
        rows = self.campaigns.find({"status": "active"}, sort=[("started_at", 1), ("_id", 1)])
        return [strip_internal(r) or {} for r in rows]

    def campaign_report(self, report_id: str) -> dict[str, Any] | None:
        """One report by ``_id``."""
        return strip_internal(self.reports.find_one({"_id": report_id}))

    def record_campaign_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events; an existing id returns the stored report."""
        return _insert(self.reports, doc, events)

    def reports_of_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """A range of the (campaign_id, filed_at) index."""
        rows = self.reports.find({"campaign_id": campaign_id}, sort=[("filed_at", 1), ("_id", 1)])
        return [strip_internal(r) or {} for r in rows]


def _insert(
    collection: Any, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
) -> tuple[dict[str, Any], bool]:
    try:
        collection.insert_one(new_document(doc, events))
    except DuplicateKeyError:
        existing = strip_internal(collection.find_one({"_id": doc["_id"]}))
        if existing is None:
            raise
        return existing, False
    return dict(doc), True
