# The ledger's processes (relay, projector, ...): one image, the `ledger` command as entrypoint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package is built from: never a local .venv or ledger-data directory.
COPY pyproject.toml README* ./
COPY src ./src
COPY schemas ./schemas
COPY projections ./projections
COPY cli ./cli
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data ledger \
    && mkdir -p /data \
    && chown ledger /data

# A named volume mounted on /data starts with this ownership.
USER ledger
WORKDIR /data
ENTRYPOINT ["ledger"]
CMD ["--help"]
