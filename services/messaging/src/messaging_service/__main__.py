"""`python -m messaging_service` starts the service."""

from messaging_service.main import run

if __name__ == "__main__":
    run()
