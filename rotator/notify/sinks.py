"""Which sink a `[notifications.NAME]` table makes: a signed webhook (`rotator.notify.webhook`) or an SNS topic
(`rotator.notify.sns`). Kept apart from both so neither imports the other, and boto3 is loaded only for an SNS table."""

from __future__ import annotations

from rotator.config.loader import WebhookSettings
from rotator.config.notifications import SnsSettings
from rotator.notify.webhook import QueuedSink, Webhook

__all__ = ["build_sink"]


def build_sink(settings: WebhookSettings | SnsSettings) -> QueuedSink:
    """The sink one `[notifications.NAME]` table describes."""
    if isinstance(settings, SnsSettings):
        from rotator.notify.sns import SnsTopic

        return SnsTopic(settings)
    return Webhook(settings)
