"""`python -m conversation_service` starts the service."""

from conversation_service.main import run

if __name__ == "__main__":
    run()
