"""One Settings object for the whole service, read from ``MIMAMORI_*`` variables and ``.env``."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-in-production-this-placeholder-is-public"


MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10
MIN_SECRET_BITS = 80.0


def estimated_entropy_bits(value: str) -> float:
    """Shannon entropy of the characters, times the length: an upper bound on the secret's
    strength. It cannot see patterns ("abcd…"), but it does catch 'a'*32 and "passwordpass…"."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return per_char * n


def secret_weakness(value: str) -> str | None:
    """Why a secret is too weak (for a message naming the setting), or None.

    ``openssl rand -hex 32`` gives about 240 estimated bits, ``secrets.token_urlsafe(32)``
    about 210; anything a person typed by hand rarely reaches the bar.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return f"it has {len(value)} characters, and at least {MIN_SECRET_LENGTH} are needed"
    distinct = len(set(value))
    if distinct < MIN_SECRET_DISTINCT:
        return f"it uses only {distinct} different characters; a random value uses many more"
    bits = estimated_entropy_bits(value)
    if bits < MIN_SECRET_BITS:
        return f"its estimated entropy is {bits:.0f} bits, below {MIN_SECRET_BITS:.0f}"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MIMAMORI_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{(Path.cwd() / 'mimamori.db').as_posix()}"
    )
    public_url: str = "http://localhost:8000"
    secret_key: str = PLACEHOLDER_SECRET
    timezone: str = "Asia/Tokyo"
    access_token_minutes: int = 8 * 60
    log_level: str = "INFO"
    # Login throttling (service/auth/throttle.py): failures allowed before a lockout, per
    # account and per client address; each later failure doubles the lockout from 15 s up to
    # this bound, and counts are forgotten a day after the last failure.
    login_free_failures_per_account: int = Field(default=5, ge=1)
    login_free_failures_per_address: int = Field(default=20, ge=1)
    login_lockout_max_seconds: int = Field(default=900, ge=1, le=86400)
    # `mimamori serve` behind a reverse proxy: the proxies (comma-separated addresses or
    # networks, "*" for any) whose X-Forwarded-For / X-Forwarded-Proto are believed. Unset:
    # none are, and the client address is the TCP peer.
    forwarded_allow_ips: str | None = None
    log_json: bool = True

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    # Tokens still accepted on inbound webhooks while the primary token is rotated.
    twilio_previous_auth_tokens: list[str] = Field(default_factory=list)
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    # auto: Twilio when an account is configured, else the console provider. In production
    # "auto" without Twilio is refused: a service that silently sends nothing is dangerous.
    telephony_provider: Literal["auto", "twilio", "console"] = "auto"
    # WhatsApp through Twilio: the WhatsApp sender (an E.164 number; "whatsapp:" is added)
    # and the approved template (Content SID) that opens a conversation with a check-in.
    whatsapp_from_number: str | None = None
    whatsapp_checkin_content_sid: str | None = None
    # LINE through its Messaging API (line-bot-sdk): the channel's secret signs webhooks.
    line_channel_secret: str | None = None
    line_channel_access_token: str | None = None
    line_api_url: str = "https://api.line.me"
    whatsapp_per_second: float = 50.0
    line_per_second: float = 100.0

    # Dispatch limits: Twilio's account rate, and a cap per recipient against floods and
    # auto-reply loops (messages over the cap wait; they are never dropped).
    sms_per_second: float = 50.0
    calls_per_second: float = 5.0
    sms_per_recipient_per_hour: int = 10
    # Alerts, reminders and the answers to a member's reply have a cap of their own, much
    # higher (a member may watch over 30 residents after an earthquake): neither cap counts
    # the other's messages, so chatter never holds back an alert, nor an alert a member's
    # confirmation (``telephony.models.ALERT_PURPOSES``).
    alert_sms_per_hour: int = Field(default=120, ge=1)
    # Requests to Twilio in flight at once. At Twilio's ~100-200 ms per request, the rate
    # caps above need about rate x 0.2 of them; more only helps when Twilio is slow. Twilio
    # allows an account about 100 concurrent API requests unless it raises the limit (429
    # beyond it, retried); the default stays at 200, which the benchmark measures.
    dispatch_concurrency: int = Field(default=200, ge=1, le=5000)
    # A send whose fate is uncertain (a timeout after sending, a dispatcher killed while it
    # waited for Twilio) is reconciled with Twilio's record. While Twilio cannot be asked,
    # a check-in message or alert is sent again after this many seconds, rather than never.
    dispatch_uncertain_resend_seconds: int = Field(default=600, ge=0)
    # The HTTP client for Twilio's REST API: aiohttp (the default, measured faster) or httpx.
    twilio_http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    # Seconds to wait for Twilio's answer once a request is sent. Past it the send is
    # uncertain and is reconciled with Twilio's record, so it should be rare: keep it long.
    twilio_read_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # Escalation alerts go by SMS; with this on, each member is also called (no details are
    # spoken: a call may be heard by others) and can answer with the keypad, 1 or 2.
    alert_voice_calls: bool = False
    # With SQLite (the embedded default) `mimamori serve` also runs the scheduler.
    embedded_scheduler: bool | None = None
    # `mimamori scheduler` has no web server; with a port set it serves /metrics there too
    # (dispatch latency is measured in the scheduler process).
    scheduler_metrics_port: int | None = None

    # JMA bulletins: the Atom feed the scheduler polls (only when enabled), and the shared
    # secret a relay uses on POST /api/v1/jma/bulletins (unset: that endpoint answers 503).
    jma_feed_url: str = "https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml"
    jma_poll_enabled: bool = False
    jma_push_token: str | None = None

    @field_validator("jma_push_token")
    @classmethod
    def _empty_token_is_unset(cls, value: str | None) -> str | None:
        """``MIMAMORI_JMA_PUSH_TOKEN=`` (empty) leaves the push endpoint off, as unset does."""
        return value or None

    # Voice prompts played with <Play> (see i18n/audio.py): an operator's recordings,
    # <dir>/<language code>/<prompt id>.wav or .mp3, which win over the prompts espeak-ng
    # rendered at build time; and where those built prompts are (default: inside the
    # installed i18n package, where `mimamori i18n build-audio` writes them).
    voice_audio_dir: Path | None = None
    voice_prompts_dir: Path | None = None

    # Machine translation of residents' free-text replies (into Japanese, for staff) and of
    # staff answers (into the resident's language). "none" sends nothing anywhere; see
    # service/translation/ and the README for what a council must agree with the provider.
    translation_provider: Literal["none", "deepl", "google"] = "none"
    # DeepL: the API key (a key ending in ":fx" is a DeepL API Free key and uses the free
    # endpoint). The server URL is only for a proxy or a test double.
    deepl_auth_key: str | None = None
    deepl_server_url: str | None = None
    # Google Cloud Translation (v3, "Advanced"): a service-account JSON key file with the
    # Cloud Translation API User role; the project defaults to the key file's own project.
    google_credentials_file: str | None = None
    google_project_id: str | None = None
    google_translate_api_url: str = "https://translation.googleapis.com"

    @field_validator("public_url", "twilio_api_url", "google_translate_api_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            if self.secret_key == PLACEHOLDER_SECRET:
                raise ValueError("MIMAMORI_SECRET_KEY is the public placeholder")
            for name, value in (
                ("MIMAMORI_SECRET_KEY", self.secret_key),
                ("MIMAMORI_JMA_PUSH_TOKEN", self.jma_push_token),
            ):
                weakness = secret_weakness(value) if value is not None else None
                if weakness:
                    raise ValueError(
                        f"{name} is too weak for production: {weakness}; generate one with "
                        "`openssl rand -hex 32`"
                    )
            if not self.public_url.lower().startswith("https://"):
                raise ValueError(
                    f"MIMAMORI_PUBLIC_URL must be an https:// URL in production, not "
                    f"{self.public_url!r}: over http the session cookie is not Secure and "
                    "Twilio's signatures are checked against the wrong URL"
                )
            if self.telephony_provider == "auto" and not self.twilio_configured:
                raise ValueError(
                    "no Twilio account is configured, so nothing would reach residents: set "
                    "MIMAMORI_TWILIO_ACCOUNT_SID and MIMAMORI_TWILIO_AUTH_TOKEN, or set "
                    "MIMAMORI_TELEPHONY_PROVIDER=console to run without sending on purpose"
                )
            missing = self.translation_missing_settings()
            if missing:
                raise ValueError(
                    f"MIMAMORI_TRANSLATION_PROVIDER={self.translation_provider} needs "
                    + " and ".join(missing)
                    + ", or set MIMAMORI_TRANSLATION_PROVIDER=none to translate nothing"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    def translation_missing_settings(self) -> list[str]:
        """The settings the chosen translation provider still lacks (empty when usable)."""
        if self.translation_provider == "deepl" and not self.deepl_auth_key:
            return ["MIMAMORI_DEEPL_AUTH_KEY"]
        if self.translation_provider == "google" and not self.google_credentials_file:
            return ["MIMAMORI_GOOGLE_CREDENTIALS_FILE"]
        return []

    def webhook_auth_tokens(self) -> list[str]:
        """Tokens that may sign an inbound webhook.

        Without a Twilio account (console provider) webhooks are still signed, with a
        token derived from the secret key, so ``mimamori simulate`` exercises the same
        validation path as Twilio does.
        """
        if self.twilio_auth_token:
            return [self.twilio_auth_token, *self.twilio_previous_auth_tokens]
        return [self.console_auth_token]

    @property
    def console_auth_token(self) -> str:
        return hashlib.sha256(f"console-webhooks:{self.secret_key}".encode()).hexdigest()[:32]


@lru_cache
def get_settings() -> Settings:
    return Settings()
