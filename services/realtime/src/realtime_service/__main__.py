from realtime_service.main import run

run()
