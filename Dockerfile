# segmentql's image: the wheel (GraphiQL's files inside) built in a Node.js
# stage, installed with constraints.txt's exact releases into a slim Python
# image that runs it as an unprivileged user.
#
#   docker build -t segmentql .
#   docker run -p 8000:8000 -v segmentql-data:/data segmentql          # the embedded database, in /data
#   docker run -p 8000:8000 -e MONGODB_URI=mongodb://... segmentql     # a real MongoDB
#
# tests/test_packaging.py replays these steps where no container engine runs.

# Node.js 26, the active LTS line: setup.py fetches GraphiQL's packages with
# `npm ci` (graphiql/package-lock.json, integrity hashes) while it builds the wheel.
FROM node:26-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE constraints.txt ./
COPY graphiql/package.json graphiql/package-lock.json ./graphiql/
COPY segmentql_pkg ./segmentql_pkg
COPY server ./server
COPY plugins ./plugins
COPY schema ./schema
RUN python3 -m venv /venv && /venv/bin/pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 segmentql && install -d -o segmentql -g segmentql /data
COPY --from=build /src/constraints.txt /dist/ /tmp/dist/
RUN pip install --no-cache-dir --root-user-action=ignore -c /tmp/dist/constraints.txt /tmp/dist/segmentql-*.whl \
    && rm -rf /tmp/dist
USER segmentql
WORKDIR /home/segmentql
# Without MONGODB_URI, serve starts the embedded database in /data.
ENV SEGMENTQL_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
# Healthy while the service answers and its database does (/healthz is 503 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["segmentql", "serve", "--host", "0.0.0.0", "--port", "8000"]
