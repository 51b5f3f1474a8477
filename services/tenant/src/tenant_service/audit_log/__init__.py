"""The append-only audit log: every service's audit.recorded events, stored once, listed by the tenant's admins."""
