# The eventreplay application image (used by docker-compose.yml's "app" profile).
# Installs exactly the locked main dependencies (poetry.lock, exported with hashes).
FROM python:3.11-slim AS requirements
WORKDIR /src
RUN pip install --no-cache-dir poetry poetry-plugin-export
COPY pyproject.toml poetry.lock ./
RUN poetry export -f requirements.txt -o requirements.txt

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY --from=requirements /src/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY eventreplay/ eventreplay/
COPY event_simulator.py consumer.py replay_api.py replay_management_ui.py ./
RUN useradd --system --uid 10001 app && mkdir -p /app/.run && chown app /app/.run
USER app
CMD ["python", "consumer.py"]
