"""The SMTP ingress on aiosmtpd."""
