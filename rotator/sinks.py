"""Which sink a `[notifications.NAME]` table makes: a signed webhook (`rotator.notify`) or an SNS topic
(`rotator.sns`). Kept apart from both so neither imports the other, and boto3 is loaded only for an SNS table."""

from __future__ import annotations

from rotator.config import WebhookSettings
from rotator.notify import QueuedSink, Webhook
from rotator.notify_config import SnsSettings

__all__ = ["build_sink"]


def build_sink(settings: WebhookSettings | SnsSettings) -> QueuedSink:
    """The sink one `[notifications.NAME]` table describes."""
    if isinstance(settings, SnsSettings):
        from rotator.sns import SnsTopic

        return SnsTopic(settings)
    return Webhook(settings)
