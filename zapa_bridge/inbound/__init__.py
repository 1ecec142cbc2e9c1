"""Webhooks: authenticated, parsed, deduplicated and queued (or spooled) at the web edge,
then applied by a worker; what cannot be applied becomes an inbound dead letter."""
