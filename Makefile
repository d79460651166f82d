# sluice: make demo | make test | make bench | make image | make fmt | make lint | make tf-check
SHELL := /bin/bash
STACK := scripts/local-stack.sh
# The stack's ports and URLs, as environment for the commands that need them.
WITH_ENV = eval "$$($(STACK) env)" &&

.PHONY: demo test test-fast bench image deployment deploy-check fmt fmt-check lint unit integration stack-up stack-down tf-check build

## demo: start the local stack, create the sample shop database, copy it into the BigQuery emulator
demo:
	scripts/demo.sh

## test: format check, clippy (warnings denied), then every test against the local stack
test: fmt-check lint stack-up
	@echo "==> building the workers (tests run the binaries too); installing the deployment checkers beside it"
	@mkdir -p .local/logs; scripts/deploy-check.sh install >.local/logs/deploy-install.log 2>&1 & installer=$$!; \
	cargo build --workspace --bins; built=$$?; \
	if ! wait $$installer; then echo "deploy-check install failed; its log: .local/logs/deploy-install.log" >&2; tail -n 20 .local/logs/deploy-install.log >&2; exit 1; fi; \
	cat .local/logs/deploy-install.log; exit $$built
	$(WITH_ENV) cargo nextest run --workspace --no-fail-fast
	@echo "==> deployment checks (image, Terraform, workflows; offline)"
	scripts/deploy-check.sh all

## test-fast: what needs no local stack: format check, clippy, unit tests (the pull-request workflow runs it)
test-fast: fmt-check lint
	cargo nextest run --workspace --lib --no-fail-fast

## bench: pg-copy --lake-only beside DuckDB's Postgres scanner (rows/s, CPU per row, peak memory, output size) on generated 5M/10M-row tables; cdc-sync on 100k and 1M waiting changes; log-ingest on 1M recorded events; mart-build on 500 generated marts and a 20-mart diamond
bench: stack-up
	$(WITH_ENV) scripts/bench.sh

## image: the container image (Dockerfile) as $(IMAGE), with Docker when a daemon answers, else buildah
IMAGE ?= sluice:dev
image:
	@if docker info >/dev/null 2>&1; then docker build -t $(IMAGE) .; \
	elif command -v buildah >/dev/null; then buildah bud --layers -t $(IMAGE) .; \
	else echo "make image: needs Docker with a running daemon, or buildah (scripts/deploy-check.sh install adds it)" >&2; exit 1; fi

## deployment: write terraform/deployment.json (what Terraform deploys per target) from pipeline.yaml, schemas/ and marts/, and terraform/views.json (the monitor's ops views), with the sluice-deploy tool (tools/deploy)
deployment:
	cargo run -q -p sluice-deploy -- export-deployment --out terraform/deployment.json
	cargo run -q -p sluice-deploy -- export-views --out terraform/views.json

## deploy-check: the offline deployment checks alone (needs the workers and sluice-deploy built: cargo build --workspace --bins)
deploy-check:
	scripts/deploy-check.sh all

fmt:
	cargo fmt --all

fmt-check:
	@echo "==> cargo fmt --check"
	cargo fmt --all -- --check

lint:
	@echo "==> cargo clippy (warnings denied)"
	cargo clippy --workspace --all-targets -- -D warnings

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

## tf-check: the deployment checks that need no image (Terraform: fmt, terraform test, provider schema, checkov, policies; cloudbuild.yaml; workflows); needs sluice-deploy built (cargo build -p sluice-deploy)
tf-check:
	scripts/deploy-check.sh terraform cloudbuild workflows
