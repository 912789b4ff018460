"""The portal: rendering, security headers, errors, the four blueprints."""
