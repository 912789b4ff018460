"""The gateway: mail in, a route per recipient, mail out. No HTTP here."""
