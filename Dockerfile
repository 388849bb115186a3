# The production image: uvicorn serving HTTP and the WebSocket feed on port 8000
# (docker-compose.yml's web command; daphne is installed too and works).
# Configuration comes from the environment (see docker-compose.yml and settings.py).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# mysqlclient compiles against MariaDB Connector/C (its shared library stays for run time).
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-libmysqlclient-dev pkg-config gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# A user of its own. Snapshots go to /data/media (a volume in docker-compose.yml),
# which it may write; the code in /app stays root's.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app \
    && install -d -o app -g app /data/media
ENV MEDIA_ROOT=/data/media
USER app

EXPOSE 8000

CMD ["uvicorn", "vehicle_monitor.asgi:application", "--host=0.0.0.0", "--port=8000", "--loop=uvloop", "--http=httptools", "--ws=websockets-sansio", "--ws-per-message-deflate=false", "--ws-max-size=65536", "--timeout-graceful-shutdown=5", "--timeout-keep-alive=75"]
