# herald on Debian 12, built from this tree with Debian's libraries.
FROM debian:12-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config libmicrohttpd-dev libwebsockets-dev \
      libnats-dev libjansson-dev libcmocka-dev libjwt-dev libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr/local \
    && cmake --build /build && cmake --install /build

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libwebsockets17 libnats3.4 libjansson4 libjwt0 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 herald
COPY --from=build /usr/local /usr/local
USER 10001
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/herald"]
