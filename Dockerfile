# dartboard: the Streamlit dashboard and the search engine in one image (docs/docker.md).
#
#   docker build -t dartboard .
#   docker run --rm -p 8501:8501 -v dartboard-runs:/runs dartboard                 # CPU
#   docker run --rm -p 8501:8501 -v dartboard-runs:/runs --gpus all dartboard      # NVIDIA GPU
#
# The PyPI torch wheel pinned in requirements.txt is a CUDA build that carries its own CUDA libraries, so
# the default (Debian, CPU) image also runs on a GPU when the host has the NVIDIA driver and the NVIDIA
# Container Toolkit (`--gpus all`). TORCH_INDEX takes torch and torchvision from another wheel index instead,
# e.g. PyTorch's CPU builds, for an image without the CUDA libraries:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t dartboard:cpu .
# BASE swaps in another base, e.g. an NVIDIA CUDA runtime image:
#   docker build --build-arg BASE=nvidia/cuda:13.0.0-runtime-ubuntu24.04 -t dartboard:cuda .
# A base without Python 3.11+ gets Python from its apt (Ubuntu 24.04: 3.12).
ARG BASE=python:3.11-slim
FROM ${BASE}
# empty: torch from PyPI (CUDA build); a URL: torch and torchvision at the same pinned versions from that index
ARG TORCH_INDEX=

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DARTBOARD_RUNS=/runs

# graphviz: the `dot` program behind the SVG export. Python (with venv) only where the base has none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
         apt-get install -y --no-install-recommends python3 python3-venv; \
       fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VIRTUAL_ENV"

WORKDIR /app

# The same requirements file the test suite installs (requirements-dev.txt starts with -r requirements.txt), and
# every package beneath it at the version the tests ran with (constraints.txt), in its own layer so a code change
# does not reinstall torch. With TORCH_INDEX, torch and torchvision come first from that index, alone (their
# versions read from requirements.txt; a CPU wheel's 2.14.1+cpu satisfies ==2.14.1); the second install keeps
# them and takes everything else, their own dependencies too, from PyPI at the constrained versions.
COPY requirements.txt constraints.txt ./
RUN if [ -n "$TORCH_INDEX" ]; then \
         pip install --no-cache-dir --no-deps --index-url "$TORCH_INDEX" $(grep -E '^(torch|torchvision)==' requirements.txt); \
       fi \
    && pip install --no-cache-dir -c constraints.txt -r requirements.txt \
    && pip install --no-cache-dir -c constraints.txt setuptools

COPY assets/ assets/
COPY engine/ engine/
COPY app/ app/
COPY pyproject.toml README.md ./
# The project itself, for the `dartboard` command (dartboard search ..., dartboard runs); its dependencies are
# already there. The dashboard below runs from /app, the same files.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build ./*.egg-info

# Not root: the dashboard runs searches and writes only under /runs (and /app/data for torchvision downloads).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin dartboard \
    && mkdir -p /runs /app/data \
    && chown dartboard:dartboard /runs /app/data
USER dartboard
VOLUME ["/runs"]

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4); sys.exit(0 if r.read().strip() == b'ok' else 1)"]

# app/.streamlit/config.toml keeps the server on localhost; in a container it must listen on every interface.
CMD ["streamlit", "run", "app/main.py", "--server.address=0.0.0.0", "--server.port=8501"]
