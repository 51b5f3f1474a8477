from webhook_ingest_service.main import run

run()
