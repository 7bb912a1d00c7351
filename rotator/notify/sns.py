"""The SNS sink: `[notifications.NAME] type = "sns"` publishes each event to a topic, as the webhook's JSON.

Why SNS as well as webhooks: on AWS, a topic fans out to e-mail, SQS, Lambda, PagerDuty or Chatbot without a
receiver to run, and IAM (not a shared HMAC key) says who may publish. The message body is exactly the webhook's
"json" payload (no secret: events carry key ids and labels only); the `event` and `credential` message attributes let
subscriptions filter (`{"event": ["rolled_back", "alert"]}`) without parsing the body.

boto3 is imported when the sink is built, and only then: a command with no SNS table never loads it. Credentials
come from boto3's usual chain (environment, profile, instance or task role). Delivery runs on `QueuedSink`'s thread
with its retries, so botocore's own retries are kept to a minimum (one retry) and a slow AWS never holds a rotation
up.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, Final

from rotator.config.notifications import SnsSettings
from rotator.core.errors import ConfigError
from rotator.core.events import RotationEvent
from rotator.notify.webhook import QueuedSink, payload

__all__ = ["SnsTopic", "message_of"]

SUBJECT_LIMIT: Final = 100
"""SNS refuses a Subject longer than 100 characters (e-mail subscriptions show it)."""


def message_of(event: RotationEvent, topic: str, topic_arn: str) -> dict[str, Any]:
    """The `Publish` arguments for one event: the JSON body, a subject, attributes to filter on, FIFO ids."""
    body = json.dumps(payload(event, topic, "json"), separators=(",", ":"))
    who = event.credential or "fleet"
    arguments: dict[str, Any] = {
        "TopicArn": topic_arn,
        "Message": body,
        "Subject": _printable(f"bluum-rotator {topic}: {who}")[:SUBJECT_LIMIT],
        "MessageAttributes": {
            "event": {"DataType": "String", "StringValue": topic},
            "credential": {"DataType": "String", "StringValue": who},
        },
    }
    if topic_arn.endswith(".fifo"):  # one group per credential keeps its events in order; the body dedupes retries
        arguments["MessageGroupId"] = who
        arguments["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()
    return arguments


class SnsTopic(QueuedSink):
    """One `type = "sns"` table as a bus subscriber. `client`: a boto3 SNS client made by the caller (tests)."""

    kind = "sns"

    def __init__(
        self,
        settings: SnsSettings,
        *,
        client: Any = None,  # noqa: ANN401 - boto3 is untyped
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._client = client if client is not None else _client(settings)
        super().__init__(settings.name, settings.events, sleep=sleep)

    def send(self, event: RotationEvent, topic: str) -> str | None:
        self._client.publish(**message_of(event, topic, self.settings.topic_arn))
        return None


def _client(settings: SnsSettings) -> Any:  # noqa: ANN401 - boto3 is untyped
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError(
            f"notifications.{settings.name}: an SNS sink needs boto3, which is not installed here: "
            "pip install 'bluum-rotator[aws]' (or remove the table)"
        ) from exc

    seconds = max(1.0, settings.timeout.total_seconds())
    config = Config(connect_timeout=seconds, read_timeout=seconds, retries={"mode": "standard", "max_attempts": 2})
    return boto3.session.Session().client(
        "sns", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    )


def _printable(text: str) -> str:
    """SNS subjects must be printable ASCII on one line."""
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
