# syntax=docker/dockerfile:1
# One image for every Yingji process:
#   yingji run intake|warning|dispatch|reporting   one service (distributed mode)
#   yingji up                                      all four in one process (embedded mode)
# Build: docker build -t yingji:0.1.0 .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/yingji
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY yingji ./yingji
RUN /opt/yingji/bin/pip install . \
 && /opt/yingji/bin/python -c 'import yingji.cli'

FROM python:3.11-slim
ENV PATH=/opt/yingji/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    YINGJI_HOST=0.0.0.0 \
    YINGJI_PORT=8000 \
    YINGJI_DATA_DIR=/var/lib/yingji \
    YINGJI_LOG_FORMAT=json
# Pango and a CJK font: the PDF documents (WeasyPrint) embed the Chinese glyphs from them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 yingji \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/yingji --shell /usr/sbin/nologin yingji \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/yingji
COPY --from=build /opt/yingji /opt/yingji
USER 10001:10001
WORKDIR /var/lib/yingji
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["yingji", "up"]
