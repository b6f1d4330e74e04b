"""Process settings read from the environment (prefix ``YINGJI_``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One Settings object per process; every field can be set as ``YINGJI_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="YINGJI_", extra="ignore")

    data_dir: Path = Path("./yingji-data")
    bus_url: str = "memory://"
    mongo_url: str = ""
    database_prefix: str = "yingji"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Where the public reaches the API (links in the Atom feed); never taken from a request's
    # Host header, which any client can set. Empty: the listening address.
    public_url: str = Field(default="", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    bootstrap_admin_key: str = ""
    county_file: Path | None = None
    # The county's local time zone is not a setting: it is the deadline profile's
    # (``timezone`` in libs/common/data/deadline-profiles.yaml) and the county file's.
    deadline_profile: str = "default"

    max_body_bytes: int = 256 * 1024
    relay_interval_seconds: float = 0.5
    # An idle relay looks less and less often, up to this (a write wakes it at once).
    relay_idle_seconds: float = 5.0
    relay_batch_size: int = 100
    outbox_lease_seconds: float = 30.0
    consumer_prefetch: int = 32
    handler_retries: int = 3
    handler_backoff_seconds: list[float] = Field(default_factory=lambda: [0.2, 1.0, 3.0])
    queue_delivery_limit: int = 10
    timer_interval_seconds: float = 5.0
    # Failed authentications allowed per client address and per key id in the window.
    auth_failure_limit: int = Field(default=20, ge=1)
    auth_failure_window_seconds: float = 60.0
    # Requests per second per API key (per client address without a key) and the burst above
    # it; 0 for either switches the limit off.
    rate_limit_per_second: float = Field(default=500.0, ge=0)
    rate_limit_burst: float = Field(default=1000.0, ge=0)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (the reverse proxy): comma-
    # separated addresses or networks, "*" for any, empty for none. Other peers' are ignored.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # HMAC key that signs pagination cursors; empty = generated once into the data directory.
    # Every replica of a service must share it.
    cursor_secret: str = ""
    # Base URLs of the other services' processes (comma-separated), for the one process the
    # proxy sends /docs and /openapi.json to: it serves their documents merged with its own.
    # Empty (embedded mode, every other process): its own document only.
    openapi_peers: str = Field(default="", pattern=r"^[\w.:/\-, ]*$")
    # Readiness fails while the data directory's file system has less free space than this
    # (bytes; embedded store only): writes would soon fail with "database or disk is full".
    # 0 switches the check off.
    min_free_disk_bytes: int = Field(default=64 * 1024 * 1024, ge=0)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item in ("", "*"):
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network") from exc
        return value

    @field_validator("deadline_profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        from libs.common.profiles import load_profiles

        known = load_profiles()
        if value not in known:
            raise ValueError(f"unknown deadline profile {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("cursor_secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters (e.g. openssl rand -hex 32)")
        return value

    @property
    def public_base_url(self) -> str:
        """The configured public URL without a trailing slash, else the listening address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def embedded_store(self) -> bool:
        """True when no MongoDB URL is configured and the embedded engine is used."""
        return not self.mongo_url

    @property
    def memory_bus(self) -> bool:
        """True when the bus is kombu's in-process memory transport."""
        return self.bus_url.startswith("memory://")
