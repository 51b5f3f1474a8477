# Eva — the two commands that matter: `make up` (run everything) and `make test` (prove it).
SHELL := /bin/bash
PROFILE ?= dev
STACK := uv run --no-sync python scripts/stack.py

.PHONY: help up down ps logs migrate seed reset test lint proto proto-check sync lock bench images

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

up: ## install what is missing, start infra + every service + the simulator, seed the demo tenant (N8N=1: and its n8n)
	@scripts/bootstrap.sh
	@$(STACK) up --profile $(PROFILE) $(if $(N8N),--n8n,)

down: ## stop everything `make up` started
	@$(STACK) down --profile $(PROFILE)

ps: ## what runs, and whether it is ready
	@$(STACK) ps --profile $(PROFILE)

logs: ## follow every process's log
	@$(STACK) logs --profile $(PROFILE)

migrate: ## run every service's migrations
	@$(STACK) migrate --profile $(PROFILE)

seed: ## (re)create the demo tenant and its WhatsApp number
	@$(STACK) seed --profile $(PROFILE)

reset: ## stop everything and wipe the local data of the profile
	@$(STACK) reset --profile $(PROFILE)

test: ## install, start the test profile, lint, unit + integration + end-to-end tests, stop
	@scripts/test.sh

lint: ## ruff, mypy, proto drift, actionlint over the workflows
	@scripts/lint.sh

images: ## build every image through the Docker engine (REGISTRY=ghcr.io/org VERSION=1.2.3 PUSH=1 LATEST=1 DEV=1 IMAGES="auth gateway")
	@uv run --no-sync python scripts/images.py $(if $(REGISTRY),--registry $(REGISTRY),) \
		$(if $(VERSION),--version $(VERSION),) $(if $(filter 1 yes true,$(PUSH)),--push,) \
		$(if $(filter 1 yes true,$(LATEST)),--latest,) $(if $(filter 1 yes true,$(DEV)),--dev,) $(IMAGES)

proto: ## regenerate libs/protos from proto/
	@scripts/gen_proto.sh

proto-check: ## fail when libs/protos is stale
	@scripts/check_proto.sh

bench: ## benchmarks against the running dev stack (run `make up` first); figures go to docs/benchmarks.md
	uv run --no-sync python scripts/bench/login.py --rate 2 --duration 30
	uv run --no-sync python scripts/bench/ingest.py
	uv run --no-sync python scripts/bench/conversations.py
	uv run --no-sync python scripts/bench/realtime.py --rates 10,100 --duration 60 --idle 15
	uv run --no-sync python scripts/bench/statuses.py --rates 20,50,100 --duration 10 --mixed-statuses 3000 --mixed-rate 100 --guest-rate 5
	uv run --no-sync python scripts/bench/bare_hmac.py --connections 32 --duration 10 --runs 3
	uv run --no-sync python scripts/bench/sockets.py --counts 1000,5000,10000 --hold 60
	uv run --no-sync python scripts/bench/outbound.py --limits 1000,1000,80 --rates 8,12,80 --duration 30 --runs 3
	uv run --no-sync python scripts/bench/http_client_cost.py --runs 3
	EVA_REDIS_URL=redis://127.0.0.1:16379/0 uv run --no-sync python scripts/bench/sequencer_cost.py
	uv run --no-sync python scripts/bench/sender.py --limits 80,1000 --messages 3000 --runs 3
	uv run --no-sync python scripts/bench/webhooks.py --rates 20,100 --duration 20

sync: ## install the workspace into .venv
	uv sync --all-packages --locked

lock: ## update uv.lock
	uv lock
