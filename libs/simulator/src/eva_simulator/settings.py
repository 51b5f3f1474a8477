"""Simulator settings, read from ``SIMULATOR_*`` environment variables.

List and object values are JSON, e.g. ``SIMULATOR_STATUS_DELAYS='[0.1, 0.5, 1]'`` or
``SIMULATOR_NUMBERS='[{"phoneNumberId": "1065...", "wabaId": "1022...", ...}]'``.
"""

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from eva_simulator.state import BusinessNumber, RuntimeConfig
from eva_simulator.webhooks import RetryPolicy


class NumberSeed(BaseModel):
    """A business number to register at start-up (same camelCase fields as ``POST /_sim/numbers``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str = Field(repr=False)
    app_secret: str = Field(repr=False)
    webhook_url: str | None = None

    def to_number(self) -> BusinessNumber:
        return BusinessNumber(
            phone_number_id=self.phone_number_id,
            waba_id=self.waba_id,
            display_phone_number=self.display_phone_number,
            access_token=self.access_token,
            app_secret=self.app_secret,
            webhook_url=self.webhook_url,
        )


class Settings(BaseSettings):
    """Everything the simulator can be configured with."""

    model_config = SettingsConfigDict(env_prefix="SIMULATOR_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3010
    log_level: str = "INFO"

    # Webhook retry policy: a compressed version of Meta's "decreasing frequency over 7 days".
    webhook_max_attempts: int = Field(default=5, ge=1)
    webhook_initial_delay: float = Field(default=0.2, ge=0)
    webhook_backoff_factor: float = Field(default=2.0, ge=1)
    webhook_max_delay: float = Field(default=10.0, ge=0)
    webhook_timeout: float = Field(default=5.0, gt=0)

    # Status webhooks after a successful send.
    auto_statuses: bool = True
    status_sequence: list[str] = Field(default_factory=lambda: ["sent", "delivered", "read"])
    status_delays: list[float] = Field(default_factory=lambda: [0.2, 0.5, 1.0])
    window_enforcement: Literal["off", "async", "sync"] = "off"

    numbers: list[NumberSeed] = Field(default_factory=list)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.webhook_max_attempts,
            initial_delay=self.webhook_initial_delay,
            factor=self.webhook_backoff_factor,
            max_delay=self.webhook_max_delay,
            timeout=self.webhook_timeout,
        )

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(
            auto_statuses=self.auto_statuses,
            status_sequence=list(self.status_sequence),
            status_delays=list(self.status_delays),
            window_enforcement=self.window_enforcement,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process settings (cached; tests build their own ``Settings(...)`` instead)."""
    return Settings()
