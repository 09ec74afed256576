# syntax=docker/dockerfile:1
#
# xmppd container image.
#   docker build -t xmppd .
#   docker run -d --name xmppd -p 5222:5222 -p 5223:5223 -p 127.0.0.1:5280:5280 \
#     -v xmppd-data:/var/lib/xmppd xmppd
#   docker exec xmppd xmppd ctl register admin localhost mypassword1
# Your own configuration: -v ./my.toml:/etc/xmppd/xmppd.toml:ro (else the
# image's copy of config/xmppd.docker.toml); reload it with
#   docker kill --signal=HUP xmppd    (or: docker exec xmppd xmppd ctl reload_config)
# tests/docker_layout.sh checks this file's structure without a Docker engine.

# ---- build stage -----------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY src ./src
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/xmppd /out/xmppd

# ---- runtime stage ---------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 xmppd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/xmppd \
      --no-create-home --shell /usr/sbin/nologin xmppd \
 && install -d -o xmppd -g xmppd -m 0750 /var/lib/xmppd
COPY --from=build /out/xmppd /usr/local/bin/xmppd
COPY config/xmppd.docker.toml /etc/xmppd/xmppd.toml
VOLUME /var/lib/xmppd
# 5222 c2s (STARTTLS), 5223 c2s direct TLS (XEP-0368), 5280 HTTP (/metrics).
EXPOSE 5222 5223 5280
# Without --config, xmppd reads ./config/xmppd.toml if present, else
# /etc/xmppd/xmppd.toml: the WORKDIR has no config/, so `xmppd ctl ...` in
# the container (healthcheck, docker exec) uses the image's config.
WORKDIR /var/lib/xmppd
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["xmppd", "ctl", "status"]
USER xmppd
ENTRYPOINT ["xmppd"]
CMD ["serve", "--config", "/etc/xmppd/xmppd.toml"]
