# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY training ./training
COPY service ./service
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 leadscore
COPY --from=build /install /usr/local
WORKDIR /app
USER leadscore
ENV LEADSCORE_MODEL_DIR=/app/models/champion WORKERS=1
VOLUME ["/app/models"]
EXPOSE 8000
CMD ["sh", "-c", "leadscore serve --host 0.0.0.0 --port 8000 --workers ${WORKERS}"]
