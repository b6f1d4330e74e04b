"""Shared plumbing for every Yingji service: settings, clock, bus, outbox, store, auth, metrics."""
