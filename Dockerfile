# syntax=docker/dockerfile:1
# Reproducible: dependencies come from requirements.lock (exact versions and their hashes;
# regenerate it with the command at its top, see README "Container"), sladesk from its wheel.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY alembic ./alembic
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 sladesk \
 && mkdir -p /var/lib/sladesk && chown sladesk:sladesk /var/lib/sladesk
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
USER sladesk
WORKDIR /home/sladesk
# The data of a container dies with it: sladesk refuses to start without
# SLADESK_DATABASE_URL unless told to run the embedded PostgreSQL, whose data directory
# must then be a volume: -e SLADESK_ALLOW_EMBEDDED=true -v sladesk-data:/var/lib/sladesk
ENV SLADESK_HOST=0.0.0.0 \
    SLADESK_PORT=8000 \
    SLADESK_ALLOW_EMBEDDED=false \
    SLADESK_DATA_DIR=/var/lib/sladesk \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# Ready (database reachable and migrated) on the configured SLADESK_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["sladesk", "healthcheck"]
CMD ["sladesk", "serve"]
