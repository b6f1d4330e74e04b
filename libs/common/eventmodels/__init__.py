"""Payload models of every event, one module per emitting service; importing registers them."""

from libs.common.eventmodels import dispatch, intake, reporting, warning

__all__ = ["dispatch", "intake", "reporting", "warning"]
