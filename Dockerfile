# mcp-bastion container image (docs/dev/deploy-contract.md, docs/deploy-aws.md).
# Build: docker build -t mcp-bastion .   Run: docker run -p 8000:8000 -e BASTION_... mcp-bastion
# No secret is ever passed to the build: credentials reach the running container as ECS-injected environment
# variables or as Secrets Manager names the application reads itself.

# --- builder: build the wheel and install it with its dependencies into a virtualenv ----------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src

# The ripgrep wheel (a pinned dependency) puts the `rg` binary into the virtualenv; fail the build without it.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/bastion \
    && /opt/bastion/bin/pip install --no-cache-dir /wheels/*.whl \
    && /opt/bastion/bin/rg --version \
    && /opt/bastion/bin/bastion --help > /dev/null

# --- runtime: the virtualenv, git, a non-root user ------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

# Debian's git is patched through the security archive; pinning an exact version would break rebuilds when a fix
# lands, so the release (bookworm) is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bastion \
    && useradd --system --uid 10001 --gid bastion --home-dir /var/lib/bastion --shell /usr/sbin/nologin bastion \
    && install -d -o bastion -g bastion -m 0750 /var/lib/bastion

COPY --from=builder /opt/bastion /opt/bastion

ENV PATH=/opt/bastion/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BASTION_DATA_DIR=/var/lib/bastion \
    BASTION_HOST=0.0.0.0 \
    BASTION_PORT=8000

USER 10001:10001
WORKDIR /var/lib/bastion
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["bastion"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
