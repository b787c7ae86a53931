# The example app (examples/flask_app) as a production image.
#
# There is no entrypoint script: every gunicorn worker calls the app factory,
# and the factory migrates the database (selfmigrate.apply) before it serves.
# Start a new image on the old volume and the database is brought up to date;
# if a migration fails, no worker boots and the container stops with the
# failing migration named in its log. docs/deploying.rst explains each line.
#
#   docker build -t flask-app .
#   docker run -d --name flask-app -p 127.0.0.1:8000:8000 -v flask-app-data:/app/data flask-app

# Any Debian-based image with python3 (and its venv module) will do.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# Offline builds install from wheels put in ./wheelhouse beforehand:
#   --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/src/wheelhouse
ARG PIP_NO_INDEX=""
ARG PIP_FIND_LINKS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY . .
RUN /opt/venv/bin/pip install ./ ./examples/flask_app "gunicorn>=22"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    # The app reads FLASK_* variables; the status command (health check) reads SELFMIGRATE_*.
    FLASK_DATABASE=/app/data/app.sqlite \
    SELFMIGRATE_DATABASE=/app/data/app.sqlite \
    SELFMIGRATE_MIGRATIONS=flask_app.migrations \
    # Defaults for gunicorn, overridable at run time (-e WEB_CONCURRENCY=8,
    # -e GUNICORN_CMD_ARGS="--bind=127.0.0.1:9000"): bind 0.0.0.0:$PORT, 4 workers.
    PORT=8000 \
    WEB_CONCURRENCY=4
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-log-init --create-home --home-dir /home/app app \
    && mkdir -p /app/data \
    && chown app:app /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
VOLUME ["/app/data"]
EXPOSE 8000
# gunicorn is PID 1: it reaps its children and turns SIGTERM into a graceful
# stop (idle workers exit at once), so no init process is needed.
STOPSIGNAL SIGTERM
# Healthy = the database is at the version this image ships (exit 0); pending
# migrations (1) or a state that needs a person (3) are unhealthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "selfmigrate", "status"]
# --timeout stays above the 60 s lock wait of selfmigrate: a worker waiting for
# another worker's migration is not killed as stuck.
CMD ["gunicorn", "--timeout", "90", "--graceful-timeout", "5", "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-", "flask_app:create_app()"]
