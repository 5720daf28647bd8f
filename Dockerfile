# Mecha itself: `mecha serve` on 0.0.0.0:21212, data in the volume /data, as user mecha.
#   docker build -t mecha .                      (the context is the repository root)
#   docker run -d -p 127.0.0.1:21212:21212 -v mecha-data:/data -e MECHA_API_KEY mecha
# FROM debian:bookworm-slim is never pulled here: images/make-base.sh makes it locally
# where no registry is reachable. Behind a TLS-intercepting proxy, first copy its CA
# bundle to deploy/ca/extra-ca.crt (the builder stage trusts it; the image never holds
# it). No BuildKit feature is used: the classic builder and BuildKit build it alike.
# See docs/deploy.md.

# ---------------------------------------------------------------- build: the venv
FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# /opt/mecha is the venv the image keeps; /opt/build holds the build backend only
RUN python3 -m venv /opt/mecha && python3 -m venv /opt/build
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_INDEX_URL=${PIP_INDEX_URL}
WORKDIR /src
COPY deploy/ca/ /tmp/ca/
COPY pyproject.toml ./
# The dependencies first (the core's and the [postgres] extra's, read from pyproject.toml),
# so that a change to src/ reuses this layer and builds in seconds
RUN if [ -s /tmp/ca/extra-ca.crt ]; then \
      cat /etc/ssl/certs/ca-certificates.crt /tmp/ca/extra-ca.crt > /tmp/ca/bundle.pem \
   && export PIP_CERT=/tmp/ca/bundle.pem \
   && echo "trusting the extra CA bundle from deploy/ca/extra-ca.crt"; \
    fi \
 && python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["postgres"]))' > /tmp/requirements.txt \
 && /opt/mecha/bin/pip install -r /tmp/requirements.txt \
 && /opt/mecha/bin/pip uninstall -q -y setuptools \
 && /opt/build/bin/pip install hatchling \
 && rm -rf /tmp/ca/bundle.pem
COPY README.md ./
# the worker images' Dockerfiles, which the wheel carries as mecha/images
COPY images/ images/
COPY src/ src/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheel . \
 && /opt/mecha/bin/pip install --no-deps --no-index /tmp/wheel/*.whl \
 && /opt/mecha/bin/pip check \
 && /opt/mecha/bin/mecha --version

# ---------------------------------------------------------------- the image
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# no manuals, docs (but licences) or translations from the packages added here
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
      > /etc/dpkg/dpkg.cfg.d/mecha-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
# a fixed uid, so a bind-mounted /data can be given to it: chown 10001:10001 DIR
RUN groupadd --system --gid 10001 mecha \
 && useradd --system --uid 10001 --gid mecha --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin mecha \
 && mkdir -m 0700 /data && chown mecha:mecha /data
COPY --from=build /opt/mecha /opt/mecha
ENV PATH=/opt/mecha/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MECHA_HOME=/data \
    MECHA_ADDR=0.0.0.0:21212
USER mecha
WORKDIR /data
VOLUME /data
EXPOSE 21212
# /health answers without the API key; the port is MECHA_ADDR's (no curl in the image)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request as u; p = os.environ.get('MECHA_ADDR', ':21212').rpartition(':')[2]; u.urlopen(f'http://127.0.0.1:{p}/health', timeout=4)"]
# tini passes SIGTERM on: serve stops taking webhooks, drains tasks in flight (up to
# MECHA_DRAIN_TIMEOUT, plus 30 s for open connections) and exits 0. Give `docker stop`
# that long: `docker stop -t 90`, or compose's stop_grace_period.
STOPSIGNAL SIGTERM
# serve reads MECHA_ADDR and MECHA_API_KEY itself (docs/configuration.md)
ENTRYPOINT ["tini", "--", "mecha"]
CMD ["serve"]
