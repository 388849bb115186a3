# vehicle_monitor: the commands a newcomer, a developer and CI use.
#
#   make demo           set up, start the server on SQLite + in-memory layer, feed it a simulated camera
#   make test           the whole suite on the machine's MariaDB and Redis (what CI runs)
#   make check          Django's system checks and a check for missing migrations
#   make lint           ruff: lint and format check
#   make format         ruff: fix what it can, and format
#   make bootstrap      set up .venv and the system packages the service needs
#   make bootstrap-dev  the same, with the test tools and the browser
#   make services       start MariaDB and Redis on this machine if they are not running
#
#   Settings:
#   make demo PORT=8001                  the demo server's port (default 8000)
#   make test PYTEST_ARGS="-k feed -x"   extra arguments for pytest

# The demo server's port: make demo PORT=8001
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help demo test check lint format bootstrap bootstrap-dev services

help:
	@sed -n 's/^#   //p' Makefile

demo:
	PORT=$(PORT) bash scripts/demo.sh

# Extra pytest arguments: make test PYTEST_ARGS="-k feed -x"
test:
	bash scripts/test.sh $(PYTEST_ARGS)

check: bootstrap
	.venv/bin/python manage.py check
	.venv/bin/python manage.py makemigrations --check --dry-run

lint: bootstrap-dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: bootstrap-dev
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bootstrap:
	bash scripts/bootstrap.sh

bootstrap-dev:
	bash scripts/bootstrap.sh --dev

services:
	bash scripts/services.sh
