# dlp's image: the API (`dlp serve`), workers (`dlp worker`) and migrations (`dlp db upgrade`).
#
#   docker build -t dlp:cpu .                                   # CPU PyTorch (the default)
#   docker build -t dlp:cuda --build-arg VARIANT=cuda .         # CUDA PyTorch from PyPI
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# Not built here (no container engine where it was written): tests/test_deployment_files.py
# checks that every `dlp` command and option below exists and that it runs as non-root.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# cpu: torch from PyTorch's CPU index (no CUDA libraries, a far smaller image);
# cuda: torch from PyPI, whose Linux wheels carry CUDA. TORCH_INDEX_URL overrides both.
ARG VARIANT=cpu
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# torch first, in a layer of its own: it is most of the image and changes least.
RUN python3 -m venv /opt/dlp \
    && case "${VARIANT}" in \
         cpu) index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" ;; \
         cuda) index="${TORCH_INDEX_URL:-https://pypi.org/simple}" ;; \
         *) echo "VARIANT must be cpu or cuda, not ${VARIANT}" >&2; exit 2 ;; \
       esac \
    && /opt/dlp/bin/pip install --index-url "${index}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY src ./src
# The README's install (`python3 -m venv .venv && .venv/bin/pip install -e .`) with the otel
# extra, so DLP_OTEL_ENDPOINT works in the image; not editable:
# the runtime stage keeps the installed package, not this source tree.
RUN /opt/dlp/bin/pip install ".[otel]"

FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="dlp" \
      org.opencontainers.image.description="Self-hosted deep-learning platform (${VARIANT})"
# libgomp: OpenMP for the native libraries that do not bundle their own.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 dlp \
    && useradd --uid 10001 --gid dlp --home-dir /data --no-create-home dlp \
    && mkdir -p /data && chown dlp:dlp /data
COPY --from=build /opt/dlp /opt/dlp
ENV PATH=/opt/dlp/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DLP_DATA_DIR=/data \
    DLP_LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000
# The API's liveness; worker containers override it (see docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["dlp"]
CMD ["serve", "--host", "0.0.0.0"]
