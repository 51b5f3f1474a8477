"""The conversation service: contacts and conversations of each tenant (gRPC ConversationService)."""
