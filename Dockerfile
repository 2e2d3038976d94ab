# syntax=docker/dockerfile:1
# The leadscore scoring service.
#   docker build -t leadscore .
#   docker run -p 8000:8000 -v "$PWD/models:/app/models:ro" -e LEADSCORE_API_KEYS=change-me leadscore
# Both stages start from the same image, so the virtual environment built in the first runs unchanged in the second.
# tests/container runs these install and start commands in a fresh virtual environment, so keep them plain.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the pins change, not on every code change.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY training ./training
COPY service ./service
RUN pip install --no-cache-dir --no-deps .

FROM python:3.11-slim-bookworm AS runtime
# LightGBM's wheel links the system OpenMP runtime, which the slim image lacks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 leadscore \
    && useradd --create-home --uid 10001 --gid 10001 leadscore \
    && mkdir -p /app/models /app/data \
    && chown leadscore:leadscore /app/models /app/data
COPY --from=build /opt/venv /opt/venv
# LEADSCORE_API_KEYS must be set at run time: without keys the service refuses to listen beyond loopback.
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    LEADSCORE_PORT=8000 \
    LEADSCORE_WORKERS=1 \
    LEADSCORE_MODEL_DIR=/app/models/champion \
    LEADSCORE_DATABASE_URL=sqlite:////app/data/leadscore.db \
    LEADSCORE_CACHE_DIR=/app/data/cache
WORKDIR /app
USER 10001:10001
VOLUME ["/app/models", "/app/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['LEADSCORE_PORT'] + '/healthz', timeout=4)"]
# exec: the service itself receives SIGTERM and flushes the score log before it stops.
CMD ["sh", "-c", "exec leadscore serve --host 0.0.0.0 --port \"$LEADSCORE_PORT\" --workers \"$LEADSCORE_WORKERS\""]
