"""Where events go besides the log: webhooks, SNS, the rotation history."""
