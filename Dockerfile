# syntax=docker/dockerfile:1
# Rapport: build the wheels (LightFM's C extension, hiredis) in a builder, run on a slim image.

FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY service ./service
COPY profiles ./profiles
COPY recommend ./recommend
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
# libgomp1: LightFM's OpenMP build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system rapport \
 && useradd --system --gid rapport --home-dir /app --shell /usr/sbin/nologin rapport \
 && mkdir -p /app /data \
 && chown rapport:rapport /data
COPY --from=build /opt/venv /opt/venv
COPY gunicorn.conf.py /app/gunicorn.conf.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAPPORT_GUNICORN_CONFIG=/app/gunicorn.conf.py \
    RAPPORT_DATA_DIR=/data \
    RAPPORT_BIND=0.0.0.0:8000
WORKDIR /app
VOLUME ["/data"]
USER rapport
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# Set REDIS_URL for a real deployment; without it an embedded Redis is started under /data.
# gunicorn.conf.py's worker reads each request whole before a thread sees it, with header and
# body deadlines and a bound on connections per address (RAPPORT_HEADER_TIMEOUT,
# RAPPORT_BODY_TIMEOUT, RAPPORT_BODY_MIN_RATE, RAPPORT_MAX_CONNECTIONS_PER_ADDRESS), so the
# image can face clients directly; behind a proxy (deploy/nginx.conf, deploy/compose.yaml) set
# RAPPORT_MAX_CONNECTIONS_PER_ADDRESS=0, since every connection then comes from the proxy.
ENTRYPOINT ["rapport"]
CMD ["serve"]
# The webhook delivery worker runs from the same image with another command, e.g.
#   docker run -e REDIS_URL=redis://redis:6379/0 <image> worker
# (deploy/compose.yaml, deploy/k8s-worker.yaml); metrics on RAPPORT_WORKER_METRICS_PORT (9464).
