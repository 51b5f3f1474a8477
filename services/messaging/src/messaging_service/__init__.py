"""The messaging service: WhatsApp messages and their delivery statuses (gRPC MessagingService; webhook consumer)."""
