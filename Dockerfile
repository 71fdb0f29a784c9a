# segmentql against a real MongoDB:
#   docker build -t segmentql . && docker run -e MONGODB_URI=mongodb://... -p 8000:8000 segmentql
FROM node:20-slim AS graphiql
WORKDIR /graphiql
COPY graphiql/package.json graphiql/package-lock.json ./
# Exact versions with integrity hashes from the lockfile; nothing is fetched at run time.
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY segmentql_pkg ./segmentql_pkg
COPY server ./server
COPY plugins ./plugins
COPY schema ./schema
RUN pip install --no-cache-dir .
COPY --from=graphiql /graphiql/node_modules /app/graphiql/node_modules
ENV SEGMENTQL_GRAPHIQL_ASSETS=/app/graphiql/node_modules \
    SEGMENTQL_DATA_DIR=/data
EXPOSE 8000
# Set MONGODB_URI; without it serve starts the embedded database in /data.
CMD ["segmentql", "serve", "--host", "0.0.0.0", "--port", "8000"]
