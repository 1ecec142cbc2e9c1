"""Settings: read once from the environment, typed, and validated at start-up."""

from __future__ import annotations

import base64
import math
import sys
from functools import lru_cache
from typing import Any, Literal, NoReturn

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zapa_bridge.errors import ConfigError
from zapa_bridge.outbound.messages import DEFAULT_MAX_TEXT_PARTS
from zapa_bridge.outbound.rate_spec import (
    RateLimit,
    parse_rate,
    parse_session_rates,
    parse_warmup,
    rate_for,
)
from zapa_bridge.session_ids import session_id_problem
from zapa_bridge.store.connection import FAST_TIMEOUT
from zapa_bridge.store.durability import ReplicaWait
from zapa_bridge.store.redis_endpoint import (
    DEFAULT_MASTER,
    SENTINEL_SCHEME,
    RedisEndpoint,
    SentinelUrl,
)

DAY = 24 * 3600
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# zapw parses bodies with Express's default limit; a larger one gets a bare 500, every time.
DEFAULT_MAX_BODY_BYTES = 100 * 1024
# A shared token is guessed online only as fast as the throttle lets; 32 characters of
# `secrets.token_urlsafe` make that hopeless, one character makes it a matter of minutes.
MIN_TOKEN_LENGTH = 32
# Room in the visibility timeout beyond one bridge call: the Redis calls around it.
ATTEMPT_MARGIN = 4.0


class Settings(BaseSettings):
    """Every knob of zapa-bridge; each field is read from the variable named in its alias."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    environment: Literal["development", "production", "test"] = Field(
        "production", alias="ZAPA_ENV"
    )
    redis_url: str = Field(DEFAULT_REDIS_URL, alias="REDIS_URL")
    redis_sentinel_master: str = Field(DEFAULT_MASTER, min_length=1,
                                       alias="REDIS_SENTINEL_MASTER")
    redis_sentinel_password: SecretStr | None = Field(None, alias="REDIS_SENTINEL_PASSWORD")
    # Replicas that must confirm an accepted send or webhook (WAIT); 0 trusts the master.
    redis_wait_replicas: int = Field(0, ge=0, le=16, alias="ZAPA_REDIS_WAIT_REPLICAS")
    # Under the webhook client's socket timeout, or the WAIT itself would time out its call.
    redis_wait_timeout: float = Field(0.25, gt=0, lt=FAST_TIMEOUT,
                                      alias="ZAPA_REDIS_WAIT_TIMEOUT")
    zapw_url: AnyHttpUrl = Field(AnyHttpUrl("http://127.0.0.1:3000"), alias="ZAPW_URL")
    zapw_api_key: SecretStr | None = Field(None, alias="ZAPW_API_KEY")
    zapw_timeout: float = Field(15.0, gt=0, alias="ZAPW_TIMEOUT")
    zapw_connect_timeout: float = Field(3.05, gt=0, alias="ZAPW_CONNECT_TIMEOUT")
    zapw_max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024,
                                     alias="ZAPW_MAX_BODY_BYTES")
    default_session: str | None = Field(None, alias="ZAPA_DEFAULT_SESSION")
    # A text over 4,096 characters goes in up to this many parts; 1 refuses it.
    max_text_parts: int = Field(DEFAULT_MAX_TEXT_PARTS, ge=1, le=100,
                                alias="ZAPA_MAX_TEXT_PARTS")

    max_retries: int = Field(8, ge=0, le=100, alias="ZAPA_MAX_RETRIES")
    retry_backoff: float = Field(2.0, gt=0, alias="ZAPA_RETRY_BACKOFF")
    retry_backoff_max: float = Field(120.0, gt=0, alias="ZAPA_RETRY_BACKOFF_MAX")
    visibility_timeout: int = Field(60, ge=5, alias="ZAPA_VISIBILITY_TIMEOUT")
    unacked_restore_interval: int = Field(5, ge=1, alias="ZAPA_UNACKED_RESTORE_INTERVAL")
    worker_alive_ttl: int = Field(10, ge=2, le=60, alias="ZAPA_WORKER_ALIVE_TTL")

    status_retention: int = Field(7 * DAY, ge=60, alias="ZAPA_STATUS_RETENTION")
    hold_validity: int = Field(DAY, ge=1, alias="ZAPA_HOLD_VALIDITY")
    reconcile_interval: float = Field(30.0, gt=0, alias="ZAPA_RECONCILE_INTERVAL")
    lost_after: float = Field(120.0, gt=0, alias="ZAPA_LOST_AFTER")
    session_cache_ttl: int = Field(60, ge=1, alias="ZAPA_SESSION_CACHE_TTL")

    webhook_token: SecretStr | None = Field(None, alias="ZAPA_WEBHOOK_TOKEN")
    webhook_secret: SecretStr | None = Field(None, alias="ZAPA_WEBHOOK_SECRET")
    webhook_max_bytes: int = Field(256 * 1024, ge=1024, alias="ZAPA_WEBHOOK_MAX_BYTES")
    dedupe_ttl: int = Field(3600, ge=60, alias="ZAPA_DEDUPE_TTL")
    spool_path: str = Field(".zapa/webhook-spool.sqlite3", alias="ZAPA_SPOOL_PATH")
    spool_drain_interval: float = Field(1.0, gt=0, alias="ZAPA_SPOOL_DRAIN_INTERVAL")
    inbound_task: str | None = Field(None, alias="ZAPA_INBOUND_TASK")
    inbound_queue: str = Field("zapa.inbound", min_length=1, alias="ZAPA_INBOUND_QUEUE")
    # GET /events: how often it is polled, and how long an event may wait for its webhook
    # before it counts as one zapw never posted.
    events_poll_interval: float = Field(2.0, gt=0, alias="ZAPA_EVENTS_POLL_INTERVAL")
    events_grace: float = Field(5.0, ge=0, alias="ZAPA_EVENTS_GRACE")
    inbound_coalesce: float = Field(0.0, ge=0, le=60, alias="ZAPA_INBOUND_COALESCE")
    inbound_coalesce_max: float = Field(10.0, gt=0, le=300, alias="ZAPA_INBOUND_COALESCE_MAX")
    public_url: str = Field("http://127.0.0.1:8000", alias="ZAPA_PUBLIC_URL")

    admin_token: SecretStr | None = Field(None, alias="ZAPA_ADMIN_TOKEN")
    admin_session_hours: float = Field(12.0, gt=0, le=24 * 30, alias="ZAPA_ADMIN_SESSION_HOURS")
    cookie_secure: bool | None = Field(None, alias="ZAPA_COOKIE_SECURE")
    # Reverse proxies in front of the web process that append to X-Forwarded-For (and set
    # X-Forwarded-Proto): the client address the throttles count by is taken from there.
    trusted_proxies: int = Field(0, ge=0, le=5, alias="ZAPA_TRUSTED_PROXIES")
    sessions: str = Field("", alias="ZAPA_SESSIONS")
    health_interval: float = Field(30.0, gt=0, alias="ZAPA_HEALTH_INTERVAL")
    queue_depth_warn: int = Field(1000, ge=1, alias="ZAPA_QUEUE_DEPTH_WARN")
    queue_depth_critical: int = Field(10000, ge=1, alias="ZAPA_QUEUE_DEPTH_CRITICAL")
    queue_age_warn: float = Field(60.0, gt=0, alias="ZAPA_QUEUE_AGE_WARN")
    queue_age_critical: float = Field(300.0, gt=0, alias="ZAPA_QUEUE_AGE_CRITICAL")

    rate_limit: str = Field("5/5s", alias="ZAPA_RATE_LIMIT")
    session_rate_limits: str = Field("", alias="ZAPA_SESSION_RATE_LIMITS")
    # Pacing (zapa_bridge.outbound.pacing), all off by default.
    recipient_rate_limit: str = Field("off", alias="ZAPA_RECIPIENT_RATE_LIMIT")
    session_daily_limit: int | None = Field(None, ge=1, alias="ZAPA_SESSION_DAILY_LIMIT")
    session_warmup: str = Field("", alias="ZAPA_SESSION_WARMUP")
    due_poll_interval: float = Field(0.05, gt=0, le=5, alias="ZAPA_DUE_POLL_INTERVAL")

    worker_concurrency: int = Field(8, ge=1, le=512, alias="ZAPA_WORKER_CONCURRENCY")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="ZAPA_LOG_LEVEL")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value.startswith(SENTINEL_SCHEME):
            SentinelUrl.parse(value)
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss://, unix:// or sentinel://")
        return value

    @field_validator("default_session", "zapw_api_key", "webhook_token", "webhook_secret",
                     "inbound_task", "admin_token", "cookie_secure", "redis_sentinel_password",
                     mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("session_daily_limit", mode="before")
    @classmethod
    def _empty_or_off_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "off") \
            else value

    @field_validator("default_session")
    @classmethod
    def _default_session_id(cls, value: str | None) -> str | None:
        problem = None if value is None else session_id_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("sessions")
    @classmethod
    def _session_ids(cls, value: str) -> str:
        for name in (part.strip() for part in value.split(",")):
            problem = session_id_problem(name) if name else None  # ",," names nothing
            if problem is not None:
                raise ValueError(f"session {name!r} {problem}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = value.get_secret_value().removeprefix("whsec_")
            try:
                key = base64.b64decode(raw + "==", validate=False)
            except ValueError:
                key = b""
            if not key:
                raise ValueError("must be a Standard Webhooks secret: whsec_<base64 key>")
        return value

    @field_validator("rate_limit", "recipient_rate_limit")
    @classmethod
    def _rate_spec(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("session_rate_limits")
    @classmethod
    def _session_rate_specs(cls, value: str) -> str:
        parse_session_rates(value)
        return value

    @field_validator("session_warmup")
    @classmethod
    def _warmup_spec(cls, value: str) -> str:
        parse_warmup(value)
        return value

    @model_validator(mode="after")
    def _holds_end_before_their_records(self) -> Settings:
        # A held record that expires first would vanish instead of becoming a dead letter.
        if self.hold_validity >= self.status_retention:
            raise ValueError("ZAPA_HOLD_VALIDITY must be shorter than ZAPA_STATUS_RETENTION")
        return self

    @model_validator(mode="after")
    def _burst_cap_covers_window(self) -> Settings:
        if self.inbound_coalesce > self.inbound_coalesce_max:
            raise ValueError(
                f"ZAPA_INBOUND_COALESCE_MAX ({self.inbound_coalesce_max:g} s) must be at least "
                f"ZAPA_INBOUND_COALESCE ({self.inbound_coalesce:g} s)")
        return self

    @model_validator(mode="after")
    def _one_attempt_fits_visibility(self) -> Settings:
        # A task is redelivered to another worker once its worker has held it this long:
        # a send's run (one bridge call at the least) must end well inside it. Retries
        # wait in the due set, so no backoff counts here.
        least = self.one_attempt + ATTEMPT_MARGIN
        if self.visibility_timeout < least:
            raise ValueError(
                f"ZAPA_VISIBILITY_TIMEOUT ({self.visibility_timeout:g} s) must cover one send "
                f"attempt, ZAPW_CONNECT_TIMEOUT ({self.zapw_connect_timeout:g} s) + "
                f"ZAPW_TIMEOUT ({self.zapw_timeout:g} s) + {ATTEMPT_MARGIN:g} s: raise it to "
                f"{math.ceil(least)} or lower the other two")
        return self

    @property
    def one_attempt(self) -> float:
        """The longest one bridge call may take (connect, then the answer)."""
        return self.zapw_connect_timeout + self.zapw_timeout

    def require_webhook_auth(self) -> None:
        """Refuse to serve webhooks unauthenticated anywhere but in development, or with a
        short token in production."""
        if self.environment != "development" and not (self.webhook_token or self.webhook_secret):
            raise ConfigError({"ZAPA_WEBHOOK_TOKEN": "ZAPA_WEBHOOK_TOKEN or ZAPA_WEBHOOK_SECRET "
                               f"must be set when ZAPA_ENV is {self.environment}"})
        self._require_long("ZAPA_WEBHOOK_TOKEN", self.webhook_token)

    def require_admin_token(self) -> None:
        """Refuse to serve the admin API without a token anywhere but in development, or
        with a short one in production."""
        if self.environment != "development" and not self.admin_token:
            raise ConfigError({"ZAPA_ADMIN_TOKEN": f"must be set when ZAPA_ENV is "
                                                   f"{self.environment}"})
        self._require_long("ZAPA_ADMIN_TOKEN", self.admin_token)

    def _require_long(self, variable: str, token: SecretStr | None) -> None:
        # Production only: the suite's own environment (`test`) runs with short tokens.
        if self.environment == "production" and token is not None \
                and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ConfigError({variable: f"must be at least {MIN_TOKEN_LENGTH} characters when "
                                         f"ZAPA_ENV is production (python -c 'import secrets; "
                                         f"print(secrets.token_urlsafe(32))')"})

    @property
    def session_cookie_secure(self) -> bool:
        """ZAPA_COOKIE_SECURE, else whether ZAPA_PUBLIC_URL is https."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.public_url.lower().startswith("https://")

    @property
    def managed_sessions(self) -> list[str]:
        """ZAPA_SESSIONS: sessions the bridge must have (created when missing)."""
        return [name.strip() for name in self.sessions.split(",") if name.strip()]

    def rate_limit_for(self, session: str) -> RateLimit | None:
        """The send limit of `session` (None: unlimited)."""
        return rate_for(session, parse_rate(self.rate_limit),
                        parse_session_rates(self.session_rate_limits))

    @property
    def redis(self) -> RedisEndpoint:
        """REDIS_URL with its Sentinel settings: what every Redis client of ours is built
        from."""
        password = self.redis_sentinel_password
        return RedisEndpoint(self.redis_url, self.redis_sentinel_master,
                             password.get_secret_value() if password else None)

    @property
    def durability(self) -> ReplicaWait:
        """ZAPA_REDIS_WAIT_REPLICAS and ZAPA_REDIS_WAIT_TIMEOUT."""
        return ReplicaWait(self.redis_wait_replicas, self.redis_wait_timeout)

    @property
    def zapw_base_url(self) -> str:
        return str(self.zapw_url).rstrip("/")


def _describe(error: ValidationError) -> dict[str, str]:
    aliases = {name: field.alias or name for name, field in Settings.model_fields.items()}
    problems: dict[str, str] = {}
    for item in error.errors():
        loc = item.get("loc") or ()
        key = str(loc[0]) if loc else "settings"
        name = aliases.get(key, key)
        message = item["msg"].removeprefix("Value error, ")
        if key == "settings" or not loc:
            name = message.split(" ", 1)[0]
        problems[name] = message
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (plus overrides by alias or field name)."""
    # Any, as in BaseSettings.__init__: the values are raw input that pydantic validates.
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def print_config_error(error: ConfigError) -> None:
    """The problems on stderr, one line each and nothing else: a traceback would only
    bury them."""
    for text in error.lines():
        print(text, file=sys.stderr)
    sys.stderr.flush()


def exit_on_config_error(error: ConfigError) -> NoReturn:
    """Print the problems and end the process (exit 2)."""
    print_config_error(error)
    raise SystemExit(2)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()
