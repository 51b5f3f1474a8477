"""API keys of a tenant: created and revoked by its admins, verified (by HMAC digest) for auth's key exchange."""
