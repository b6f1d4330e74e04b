"""Payload models of every event, one module per emitting service; importing registers them."""

from libs.common.eventmodels import dispatch, duty, enterprise, intake, reporting, warning

__all__ = ["dispatch", "duty", "enterprise", "intake", "reporting", "warning"]
