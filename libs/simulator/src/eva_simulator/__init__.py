"""Eva's WhatsApp Cloud API simulator: a fake Meta Graph API that sends signed webhooks like Meta."""

from eva_simulator.signing import meta_body, signature

__all__ = ["meta_body", "signature"]
