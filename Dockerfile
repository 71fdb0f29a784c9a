# segmentql against a real MongoDB: docker run -e MONGODB_URI=mongodb://... -p 8000:8000 segmentql
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY segmentql_pkg ./segmentql_pkg
COPY server ./server
COPY plugins ./plugins
COPY schema ./schema
RUN pip install --no-cache-dir .
ENV SEGMENTQL_DATA_DIR=/data
EXPOSE 8000
# MONGODB_URI must be set; without it serve would start the embedded database in /data.
CMD ["segmentql", "serve", "--host", "0.0.0.0", "--port", "8000"]
