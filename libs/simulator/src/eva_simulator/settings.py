"""Simulator settings, read from ``SIMULATOR_*`` environment variables.

List and object values are JSON, e.g. ``SIMULATOR_STATUS_DELAYS='[0.1, 0.5, 1]'`` or
``SIMULATOR_NUMBERS='[{"phoneNumberId": "1065...", "wabaId": "1022...", ...}]'``.
"""

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from eva_simulator.state import BusinessNumber, RuntimeConfig, Template, new_template_id
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
    coexistence: bool = False
    throughput_mps: int | None = Field(default=None, ge=1)

    def to_number(self) -> BusinessNumber:
        return BusinessNumber(
            phone_number_id=self.phone_number_id,
            waba_id=self.waba_id,
            display_phone_number=self.display_phone_number,
            access_token=self.access_token,
            app_secret=self.app_secret,
            webhook_url=self.webhook_url,
            coexistence=self.coexistence,
            throughput_mps=self.throughput_mps,
        )


TemplateCategory = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
TemplateStatus = Literal[
    "APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "FLAGGED", "IN_APPEAL", "PENDING_DELETION", "DELETED"
]
TemplateQuality = Literal["GREEN", "YELLOW", "RED", "UNKNOWN"]


class TemplateSeed(BaseModel):
    """A template of a WABA (same camelCase fields as ``POST /_sim/templates``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    waba_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=1)
    category: TemplateCategory
    status: TemplateStatus = "APPROVED"
    components: list[dict[str, Any]] = Field(default_factory=list)
    parameter_format: Literal["POSITIONAL", "NAMED"] = "POSITIONAL"
    quality: TemplateQuality = "GREEN"
    rejected_reason: str | None = None
    id: str | None = Field(default=None, pattern=r"^\d{15,}$")

    def to_template(self, template_id: str | None = None) -> Template:
        return Template(
            template_id=self.id or template_id or new_template_id(),
            waba_id=self.waba_id,
            name=self.name,
            language=self.language,
            category=self.category,
            components=[dict(item) for item in self.components],
            status=self.status,
            parameter_format=self.parameter_format,
            quality=self.quality,
            rejected_reason=self.rejected_reason,
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
    window_enforcement: Literal["off", "async", "sync"] = "async"
    throughput_enforcement: bool = True
    pair_rate_enforcement: bool = True
    pair_rate_burst: int = Field(default=45, ge=1)
    pair_rate_per_seconds: float = Field(default=6.0, gt=0)

    numbers: list[NumberSeed] = Field(default_factory=list)
    templates: list[TemplateSeed] = Field(default_factory=list)

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
            throughput_enforcement=self.throughput_enforcement,
            pair_rate_enforcement=self.pair_rate_enforcement,
            pair_rate_burst=self.pair_rate_burst,
            pair_rate_per_seconds=self.pair_rate_per_seconds,
        )

    def template_seeds(self) -> list[Template]:
        return [seed.to_template() for seed in self.templates]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process settings (cached; tests build their own ``Settings(...)`` instead)."""
    return Settings()
