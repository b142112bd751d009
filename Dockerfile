# The ledger's processes (relay, projector, ...): one image, the `ledger` command as entrypoint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package is built from (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README* constraints.txt ./
COPY src ./src
COPY schemas ./schemas
COPY projections ./projections
COPY cli ./cli
# The versions CI tests (constraints.txt). psycopg comes with psycopg-binary, whose wheel
# carries its own libpq: the slim image has none, and needs no compiler. EXTRAS=insight adds
# scikit-learn for `ledger insight churn|clusters` (about 150 MB more; basket needs nothing).
ARG EXTRAS=""
RUN pip install -c constraints.txt ".${EXTRAS:+[$EXTRAS]}" \
    && python -c "import psycopg; assert psycopg.pq.__impl__ == 'binary', psycopg.pq.__impl__" \
    && useradd --system --uid 10001 --home-dir /data ledger \
    && mkdir -p /data /lake \
    && chown ledger /data /lake

# A named volume mounted on /data starts with this ownership.
USER ledger
WORKDIR /data
# `ledger serve` answers /metrics, /healthz and /readyz here (LEDGER_METRICS_PORT). The health
# check is written per service in docker-compose.yml, not here: the same image also runs
# one-shot commands (`ledger topics create`, `ledger query`) that serve no port.
EXPOSE 9464
ENTRYPOINT ["ledger"]
CMD ["--help"]
