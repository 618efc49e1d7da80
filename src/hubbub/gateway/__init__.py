"""The gateway: tenants, users and API keys, and (to come) the public entrance."""
