"""The duty office's own settings (``YINGJI_UPSTREAM_*``): where the city's platform listens and
the token the pushes carry to it. Upward reporting is off while the URL is unset. (The city
calls back with an API key of its own, a leader key the county issues.)"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DutySettings(BaseSettings):
    """Read from the environment once per service context."""

    model_config = SettingsConfigDict(env_prefix="YINGJI_", extra="ignore")

    upstream_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    upstream_token: str = ""
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    # The national profile judges 迟报 upward, whatever profile the county's own deadlines use.
    upstream_deadline_profile: str = "national"
    # Pushes leased by one process while it tries them (another process takes over after).
    upstream_lease_seconds: float = Field(default=60.0, gt=0)

    @property
    def upward_enabled(self) -> bool:
        """True when a city endpoint is configured."""
        return bool(self.upstream_url)
