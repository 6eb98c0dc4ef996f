# syntax=docker/dockerfile:1
# mailpulse's container image: `docker build -t mailpulse .`
#
# Stage 1 (builder) builds the mailpulse wheel (`pip wheel --no-deps`) and a
# wheel of every dependency; compilers live here only, for a dependency without
# a binary wheel for the platform. Stage 2 (runtime) is a slim Python that
# installs those wheels offline and runs as a fixed non-root user (10001:10001),
# the uid/gid the Helm chart's securityContext names. No compiler reaches it.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# What the wheel is built from: pyproject.toml, the README it names, and the
# four folders its package-dir mapping installs (mailpulse, topics, connectors, streams).
COPY pyproject.toml README.md ./
COPY mailpulse ./mailpulse
COPY topics ./topics
COPY connectors ./connectors
COPY streams ./streams
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels /wheels/mailpulse-*.whl

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="mailpulse" \
      org.opencontainers.image.description="Email providers' event APIs to an exactly-once Kafka event log, with per-message, per-campaign and per-contact state." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 mailpulse \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mailpulse --no-create-home \
      --shell /usr/sbin/nologin mailpulse
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels mailpulse \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/mailpulse
# The worker's RocksDB state (worker.data_dir); the chart mounts a PersistentVolumeClaim here.
VOLUME ["/var/lib/mailpulse"]
WORKDIR /var/lib/mailpulse
USER 10001:10001
# worker.web_port (query API, /metrics, /healthz, /readyz) and connect.metrics_port.
EXPOSE 6066 9108
ENTRYPOINT ["mailpulse"]
CMD ["--help"]
