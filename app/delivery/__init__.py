"""Mail out: the durable queue, its runner, transports, DSNs, DKIM, templates."""
