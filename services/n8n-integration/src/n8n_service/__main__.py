from n8n_service.main import run

run()
